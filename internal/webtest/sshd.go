package webtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// SSHD is a running OpenSSH server that accepts the test's key for root.
type SSHD struct {
	Addr    string // 127.0.0.1:port
	Port    string
	HostKey ssh.PublicKey
	// BusyBoxDir is, in BusyBox mode, the directory of applet links that is the sessions' only
	// PATH entry; "" otherwise.
	BusyBoxDir string
	cmd        *exec.Cmd
	exited     <-chan struct{}
	stopped    bool
	confFile   string
}

// SSHDOptions adjust the server that StartSSHDWith starts.
type SSHDOptions struct {
	// Untrusted leaves the server's host key out of the client's known_hosts.
	Untrusted bool
	// BusyBox makes every session run under BusyBox, as on Alpine: the command, or the
	// interactive shell, runs in busybox sh with PATH holding only links to BusyBox's applets
	// (see SSHD.BusyBoxDir). SFTP is served by OpenSSH's sftp-server.
	BusyBox bool
	// Config is added to the server's sshd_config (e.g. "AllowTcpForwarding no").
	Config string
}

// SSHClient is the client side shared by a test's servers: a key and a known_hosts file.
type SSHClient struct {
	Dir        string
	KeyFile    string
	PublicKey  ssh.PublicKey
	KnownHosts string
	Config     string // an ssh_config file; Alias adds entries
}

// NewSSHClient makes a client key and empty known_hosts and config files.
func NewSSHClient(t TB) *SSHClient {
	t.Helper()
	dir := t.TempDir()
	c := &SSHClient{Dir: dir, KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts"), Config: filepath.Join(dir, "config")}
	pub := writeKey(t, c.KeyFile)
	c.PublicKey = pub
	os.WriteFile(c.KnownHosts, nil, 0o600)
	os.WriteFile(c.Config, nil, 0o600)
	return c
}

// Alias adds a Host entry to the client's ssh_config.
func (c *SSHClient) Alias(t TB, alias string, s *SSHD) { c.AliasVia(t, alias, s, "") }

// AliasVia adds a Host entry reached through the ProxyJump hop jump ("" for none).
func (c *SSHClient) AliasVia(t TB, alias string, s *SSHD, jump string) {
	f, err := os.OpenFile(c.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	fmt.Fprintf(f, "Host %s\n  HostName 127.0.0.1\n  Port %s\n  User root\n  IdentityFile %s\n", alias, s.Port, c.KeyFile)
	if jump != "" {
		fmt.Fprintf(f, "  ProxyJump %s\n", jump)
	}
	fmt.Fprintln(f)
}

func writeKey(t TB, file string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("%v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("%v", err)
	}
	os.WriteFile(file+".pub", ssh.MarshalAuthorizedKey(sp), 0o644)
	return sp
}

// StartSSHD starts Debian's sshd on a free loopback port with a new host key, trusting c's key,
// and adds its host key to c's known_hosts (unless untrusted is set).
func StartSSHD(t TB, c *SSHClient, untrusted bool) *SSHD {
	t.Helper()
	return StartSSHDWith(t, c, SSHDOptions{Untrusted: untrusted})
}

// StartSSHDWith is StartSSHD with options.
func StartSSHDWith(t TB, c *SSHClient, o SSHDOptions) *SSHD {
	t.Helper()
	bin := Need(t, "openssh-server", "/usr/sbin/sshd")
	subsystem := "internal-sftp"
	var busyBoxConf string
	var busyBoxDir string
	if o.BusyBox {
		busyBoxDir, subsystem, busyBoxConf = setupBusyBox(t)
	}
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	dir := t.TempDir()
	s := &SSHD{Addr: FreePort(t), BusyBoxDir: busyBoxDir}
	_, s.Port, _ = net.SplitHostPort(s.Addr)
	s.HostKey = writeKey(t, filepath.Join(dir, "host_ed25519"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(c.PublicKey), 0o600)
	s.confFile = filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %[2]s/host_ed25519
PidFile %[2]s/sshd.pid
AuthorizedKeysFile %[2]s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
MaxSessions 100
MaxStartups 100
LogLevel ERROR
Subsystem sftp %[3]s
%[4]s
%[5]s
`, s.Port, dir, subsystem, busyBoxConf, o.Config)
	os.WriteFile(s.confFile, []byte(conf), 0o600)
	s.cmd = exec.Command(bin, "-D", "-e", "-f", s.confFile)
	logFile, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { logFile.Close() })
	s.cmd.Stderr = logFile
	s.exited = startProcess(t, s.cmd, syscall.SIGTERM)
	waitPort(t, s.Addr, s.cmd, s.exited, logFile.Name())
	if !o.Untrusted {
		f, err := os.OpenFile(c.KnownHosts, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("%v", err)
		}
		fmt.Fprintln(f, knownhosts.Line([]string{s.Addr}, s.HostKey))
		f.Close()
	}
	return s
}

// Stop kills the server and every connection it serves, as a host that goes down would. sshd
// puts each connection in a session of its own, so the tree is found through /proc.
func (s *SSHD) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	pids := descendants(s.cmd.Process.Pid)
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-s.exited
}

// WaitIdle waits until no command of a session of the server is left: a client killed mid-run
// leaves its commands running on the host, orphaned, until they end or notice the connection is
// gone. They are found by the SSH_CONNECTION sshd put in their environment (what they start in
// the background too).
func (s *SSHD) WaitIdle(t TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := s.sessionProcesses()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of sessions of sshd on %s still run after %v", pids, s.Addr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionProcesses lists the processes whose SSH_CONNECTION names this server's port.
func (s *SSHD) sessionProcesses() []int {
	suffix := []byte(" 127.0.0.1 " + s.Port)
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, v := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(v, []byte("SSH_CONNECTION=")) && bytes.HasSuffix(v, suffix) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
