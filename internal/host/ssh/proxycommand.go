package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// proxyCommandLine expands the tokens of t's ProxyCommand as OpenSSH does (ssh_config(5),
// TOKENS): %h the host name, %n the name as given, %p the port, %r the user, %% a '%'. The
// command runs in a shell, so, as OpenSSH has since 9.6 (CVE-2023-51385), a name holding
// characters the shell would act on is refused rather than put in the command: hosts come from
// ferry.yaml, which may come from a repository.
func proxyCommandLine(t target) (string, error) {
	var b strings.Builder
	s := t.command
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("ProxyCommand %s: ends with a lone %%", s)
		}
		var v string
		switch s[i] {
		case '%':
			b.WriteByte('%')
			continue
		case 'h':
			v = t.host
		case 'n':
			v = t.alias
		case 'p':
			v = t.port
			if strings.Trim(v, "0123456789") != "" {
				return "", fmt.Errorf("ProxyCommand %s: port %q is not a number", s, v)
			}
		case 'r':
			v = t.user
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return "", fmt.Errorf("ProxyCommand %s: unknown token %%%c (it accepts %%h, %%n, %%p, %%r and %%%%)", s, r)
		}
		if !shellInert(v) {
			return "", fmt.Errorf("ProxyCommand %s: refusing to put %q in a shell command: it holds characters the shell would act on", s, v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// shellInert reports whether s may stand in a shell command unquoted without the shell acting on
// it: OpenSSH's test for host and user names expanded into a ProxyCommand.
func shellInert(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if strings.ContainsRune("'`\"$\\;&<>|(){}", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// proxyConn is a connection through a ProxyCommand: the command's stdin and stdout. The command
// runs in a session of its own, so that it cannot prompt on ferry's terminal (it fails at once
// instead of waiting) and so that Close can kill it with everything it started.
type proxyConn struct {
	command string // as run, tokens expanded
	timeout time.Duration
	cmd     *exec.Cmd
	stdin   *os.File
	stdout  *os.File
	stderr  *lastLines

	exited  chan struct{} // closed when cmd.Wait returns, with waitErr
	waitErr error

	answered  atomic.Bool // the first bytes came, within timeout
	timedOut  atomic.Bool // they did not
	broken    atomic.Bool // a read or write failed: the command ended the connection
	killed    atomic.Bool // Close killed the command
	closeOnce sync.Once

	remote net.Addr
}

// startProxy starts t's ProxyCommand with `sh -c`. The server must answer within timeout.
func startProxy(t target, timeout time.Duration) (*proxyConn, error) {
	line, err := proxyCommandLine(t)
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ProxyCommand %s: %w", line, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("ProxyCommand %s: %w", line, err)
	}
	// "exec", as OpenSSH does, so the shell does not linger between ferry and the command.
	cmd := exec.Command("/bin/sh", "-c", "exec "+line)
	c := &proxyConn{command: line, timeout: timeout, cmd: cmd, stdin: inW, stdout: outR,
		stderr: &lastLines{}, exited: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// A process that left the session may hold stderr open; Wait gives up on it after this.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("ProxyCommand %s: %w", line, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	port, _ := strconv.Atoi(t.port)
	// knownhosts wants a TCP address; the host's own address is unknown behind the command.
	c.remote = &net.TCPAddr{IP: net.ParseIP(t.host), Port: port}
	outR.SetReadDeadline(time.Now().Add(timeout))
	return c, nil
}

func (c *proxyConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if n > 0 && !c.answered.Load() {
		c.answered.Store(true)
		c.stdout.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.answered.Load() {
			c.timedOut.Store(true)
		} else {
			c.broken.Store(true)
		}
	}
	return n, err
}

func (c *proxyConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

// Close kills the command's process group and waits for the command.
func (c *proxyConn) Close() error {
	c.closeOnce.Do(func() {
		c.stdin.Close()
		if c.broken.Load() {
			// The command ended the connection: let it exit on its own, so that failure reports
			// its exit status rather than the kill.
			select {
			case <-c.exited:
			case <-time.After(time.Second):
			}
		}
		c.killed.Store(true)
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		c.stdout.Close()
	})
	return nil
}

// failure is, once the connection is closed, why the command ended it, or nil if Close did.
// handshakeErr is the error of the SSH handshake, which failed.
func (c *proxyConn) failure(handshakeErr error) error {
	select {
	case <-c.exited:
	default:
		return nil
	}
	var status string
	var ee *exec.ExitError
	switch {
	case c.timedOut.Load():
		status = fmt.Sprintf("no answer from the server within %s", c.timeout)
	case errors.As(c.waitErr, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && c.killed.Load():
			return nil
		case ws.Signaled():
			status = "killed by signal " + ws.Signal().String()
		default:
			status = fmt.Sprintf("exited %d", ws.ExitStatus())
		}
	case c.waitErr != nil:
		status = c.waitErr.Error()
	case c.broken.Load():
		// It ended the connection and succeeded: perhaps the server ended it first.
		if tail := c.stderr.String(); tail != "" {
			return fmt.Errorf("ProxyCommand %s: exited 0 during the SSH handshake: %s: %w", c.command, tail, handshakeErr)
		}
		return fmt.Errorf("ProxyCommand %s: exited 0 during the SSH handshake: %w", c.command, handshakeErr)
	default:
		return nil
	}
	if tail := c.stderr.String(); tail != "" {
		status += ": " + tail
	}
	return fmt.Errorf("ProxyCommand %s: %s", c.command, status)
}

func (c *proxyConn) LocalAddr() net.Addr                { return proxyAddr{} }
func (c *proxyConn) RemoteAddr() net.Addr               { return c.remote }
func (c *proxyConn) SetReadDeadline(t time.Time) error  { return c.stdout.SetReadDeadline(t) }
func (c *proxyConn) SetWriteDeadline(t time.Time) error { return c.stdin.SetWriteDeadline(t) }
func (c *proxyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// proxyAddr is the local end of a ProxyCommand connection: the pipes to the command.
type proxyAddr struct{}

func (proxyAddr) Network() string { return "pipe" }
func (proxyAddr) String() string  { return "ProxyCommand" }

// lastLines keeps the end of a command's stderr, for the error that reports its failure.
type lastLines struct {
	mu  sync.Mutex
	buf []byte
}

const (
	lastLinesBytes = 4 << 10
	lastLinesShown = 5
)

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > lastLinesBytes {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-lastLinesBytes:]...)
	}
	return len(p), nil
}

// String is the last non-empty lines, joined on one line.
func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	for _, s := range strings.Split(string(l.buf), "\n") {
		if s = strings.TrimSpace(s); s != "" {
			lines = append(lines, s)
		}
	}
	if len(lines) > lastLinesShown {
		lines = lines[len(lines)-lastLinesShown:]
	}
	return strings.Join(lines, "; ")
}
