// Package webtest starts real servers from Debian's packages (nginx, PHP-FPM) on free loopback
// ports for tests and benchmarks, and stops them by their own process ids. A server that is not
// installed skips the test, or fails it when FERRY_TEST_DISALLOW_SKIP is set (as CI does).
package webtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TB is the part of testing.TB that the helpers use; bench programs pass their own.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

var _ TB = (testing.TB)(nil)

// Need returns the path of the first of the binaries that exists, or skips (fails under
// FERRY_TEST_DISALLOW_SKIP) naming the package that provides it.
func Need(t TB, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		matches, _ := filepath.Glob(c)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && !fi.IsDir() {
				return m
			}
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed (Debian package %s; scripts/install-test-deps installs it)", candidates[0], pkg)
	if os.Getenv("FERRY_TEST_DISALLOW_SKIP") != "" {
		t.Fatalf("%s, and FERRY_TEST_DISALLOW_SKIP is set", msg)
	}
	t.Skipf("%s", msg)
	return ""
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitPort polls addr until it accepts a connection, failing if the process exits first.
func waitPort(t TB, addr string, cmd *exec.Cmd, exited <-chan struct{}, logFile string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			err = fmt.Errorf("it exited: %v", err)
		default:
			if time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		log, _ := os.ReadFile(logFile)
		t.Fatalf("%s did not start listening on %s: %v\n%s", cmd.Path, addr, err, log)
	}
}

// startProcess starts cmd and registers its stop: sig to its own pid, then a wait. The returned
// channel is closed when the process has exited.
func startProcess(t TB, cmd *exec.Cmd, sig syscall.Signal) <-chan struct{} {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return done
}

// Nginx is a running nginx.
type Nginx struct {
	Addr   string // 127.0.0.1:port
	Bin    string
	Conf   string // the main config file
	Prefix string
	cmd    *exec.Cmd
}

// NginxOptions adjust the server block.
type NginxOptions struct {
	// ServerBlock is the text of a server block (such as examples/static/nginx.conf) in which
	// "listen 80;", "/srv/www/example.com" and "unix:/run/php/php8.2-fpm.sock" are replaced by
	// the test's address, root and PHP-FPM address.
	ServerBlock string
	Root        string
	PHPFPM      string
	// HTTP holds extra directives for the http block, such as "open_file_cache max=1000;".
	HTTP string
}

// StartNginx starts nginx in the foreground with a config of its own.
func StartNginx(t TB, o NginxOptions) *Nginx {
	t.Helper()
	bin := Need(t, "nginx", "/usr/sbin/nginx", "nginx")
	dir := t.TempDir()
	n := &Nginx{Addr: FreePort(t), Bin: bin, Prefix: dir, Conf: filepath.Join(dir, "nginx.conf")}
	block := o.ServerBlock
	block = strings.ReplaceAll(block, "listen 80;", "listen "+n.Addr+";")
	block = strings.ReplaceAll(block, "/srv/www/example.com", o.Root)
	block = strings.ReplaceAll(block, "include fastcgi_params;", "include /etc/nginx/fastcgi_params;")
	if o.PHPFPM != "" {
		block = strings.ReplaceAll(block, "unix:/run/php/php8.2-fpm.sock", o.PHPFPM)
	}
	conf := fmt.Sprintf(`daemon off;
user root;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    %[2]s
%[3]s
}
`, dir, o.HTTP, block)
	if err := os.WriteFile(n.Conf, []byte(conf), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	n.cmd = exec.Command(bin, "-p", dir, "-c", n.Conf)
	n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
	exited := startProcess(t, n.cmd, syscall.SIGQUIT)
	waitPort(t, n.Addr, n.cmd, exited, filepath.Join(dir, "error.log"))
	return n
}

// ReloadCommand is the shell command that reloads this nginx, as `nginx -s reload` does.
func (n *Nginx) ReloadCommand() string {
	return fmt.Sprintf("%s -p %s -c %s -s reload", n.Bin, n.Prefix, n.Conf)
}

// URL returns the address of path on this nginx.
func (n *Nginx) URL(path string) string { return "http://" + n.Addr + path }

// PHPFPM is a running PHP-FPM pool.
type PHPFPM struct {
	Addr string
	cmd  *exec.Cmd
}

// ReloadCommand is the shell command that reloads this PHP-FPM gracefully, as
// systemctl reload php8.2-fpm does: SIGUSR2 to its master.
func (p *PHPFPM) ReloadCommand() string { return fmt.Sprintf("kill -USR2 %d", p.cmd.Process.Pid) }

// StartPHPFPM starts PHP-FPM in the foreground with a pool on a loopback port.
func StartPHPFPM(t TB) *PHPFPM {
	t.Helper()
	bin := Need(t, "php-fpm", "/usr/sbin/php-fpm*", "php-fpm")
	dir := t.TempDir()
	p := &PHPFPM{Addr: FreePort(t)}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/php-fpm.pid
error_log = %[1]s/php-fpm.log
daemonize = no
; Without it a reload (SIGUSR2) kills the workers at once: requests in flight get 502.
process_control_timeout = 10s
[www]
user = root
listen = %[2]s
pm = static
pm.max_children = 4
clear_env = no
catch_workers_output = yes
`, dir, p.Addr)
	confFile := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	p.cmd = exec.Command(bin, "-F", "-R", "-y", confFile)
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	exited := startProcess(t, p.cmd, syscall.SIGQUIT)
	waitPort(t, p.Addr, p.cmd, exited, filepath.Join(dir, "php-fpm.log"))
	return p
}

// Context returns a context that ends with the test.
func Context(t TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// Program lets the helpers run outside a test, in a benchmark program: a failure runs the
// cleanups and ends the program, and cleanups run when Close is called.
type Program struct{ cleanups []func() }

// Helper implements TB.
func (p *Program) Helper() {}

// Fatalf implements TB.
func (p *Program) Fatalf(format string, args ...any) {
	p.Close()
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// Skipf implements TB: a benchmark cannot skip what it needs.
func (p *Program) Skipf(format string, args ...any) { p.Fatalf(format, args...) }

// Cleanup implements TB.
func (p *Program) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

// TempDir implements TB.
func (p *Program) TempDir() string {
	d, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, last first.
func (p *Program) Close() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}
