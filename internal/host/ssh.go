package host

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kevinburke/ssh_config"
	"github.com/pkg/sftp"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SSH is a host reached over one SSH connection: file operations go through SFTP on it, commands
// and uploads through sessions multiplexed on it. Nothing is installed on the host; it needs a
// POSIX shell, tar and OpenSSH's SFTP server.
type SSH struct {
	name   string
	client *ssh.Client
	jumps  []*ssh.Client
	sftp   *sftp.Client
	ctl    *ctlShell
	ctlMu  sync.Mutex
	// Sent counts the bytes of upload streams written to the connection (after compression).
	Sent atomic.Int64
}

// SSHOptions locate the user's SSH files. Empty fields take the defaults under $HOME/.ssh.
type SSHOptions struct {
	ConfigFile     string
	KnownHostsFile string
	IdentityFiles  []string // tried when ssh_config names none
	Timeout        time.Duration
}

// HostKeyError is an unknown or changed host key; Hint tells how to trust it.
type HostKeyError struct {
	Host        string
	Fingerprint string
	Changed     bool
	Hint        string
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s has CHANGED (now %s): refusing to connect; someone may be intercepting the connection", e.Host, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s is not known (%s): refusing to connect", e.Host, e.Fingerprint)
}

// target is where and as whom to connect, after ~/.ssh/config.
type target struct {
	alias, user, host, port string
	identities              []string
	jump                    string
}

func (o SSHOptions) withDefaults() SSHOptions {
	home, _ := os.UserHomeDir()
	if o.ConfigFile == "" {
		o.ConfigFile = filepath.Join(home, ".ssh", "config")
	}
	if o.KnownHostsFile == "" {
		o.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if len(o.IdentityFiles) == 0 {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			o.IdentityFiles = append(o.IdentityFiles, filepath.Join(home, ".ssh", n))
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	return o
}

// resolve reads "user@host:port" or an alias through ~/.ssh/config.
func resolve(spec string, o SSHOptions) (target, error) {
	t := target{alias: spec}
	if at := strings.LastIndex(spec, "@"); at >= 0 {
		t.user, spec = spec[:at], spec[at+1:]
	}
	if h, p, err := net.SplitHostPort(spec); err == nil {
		spec, t.port = h, p
	}
	t.alias, t.host = spec, spec
	var cfg *ssh_config.Config
	if f, err := os.Open(o.ConfigFile); err == nil {
		cfg, err = ssh_config.Decode(f)
		f.Close()
		if err != nil {
			return t, fmt.Errorf("%s: %w", o.ConfigFile, err)
		}
	}
	get := func(key string) string {
		if cfg == nil {
			return ""
		}
		v, _ := cfg.Get(t.alias, key)
		return v
	}
	if v := get("HostName"); v != "" {
		t.host = strings.ReplaceAll(v, "%h", t.alias)
	}
	if t.user == "" {
		t.user = get("User")
	}
	if t.user == "" {
		t.user = os.Getenv("USER")
	}
	if t.user == "" {
		t.user = "root"
	}
	if t.port == "" {
		t.port = get("Port")
	}
	if t.port == "" {
		t.port = "22"
	}
	if cfg != nil {
		ids, _ := cfg.GetAll(t.alias, "IdentityFile")
		home, _ := os.UserHomeDir()
		for _, id := range ids {
			if strings.HasPrefix(id, "~/") {
				id = filepath.Join(home, id[2:])
			}
			t.identities = append(t.identities, id)
		}
	}
	if len(t.identities) == 0 {
		t.identities = o.IdentityFiles
	}
	if j := get("ProxyJump"); j != "" && !strings.EqualFold(j, "none") {
		t.jump = j
	}
	return t, nil
}

// DialSSH connects to spec ("user@host:port" or an alias of ~/.ssh/config), checking the host key
// strictly against known_hosts, and opens an SFTP session on the connection.
func DialSSH(ctx context.Context, name, spec string, o SSHOptions) (*SSH, error) {
	o = o.withDefaults()
	h := &SSH{name: name}
	client, err := h.dial(ctx, spec, o, 0)
	if err != nil {
		h.Close()
		return nil, err
	}
	h.client = client
	h.sftp, err = sftp.NewClient(client, sftp.UseConcurrentWrites(true))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("%s: start sftp: %w", name, err)
	}
	return h, nil
}

func (h *SSH) dial(ctx context.Context, spec string, o SSHOptions, depth int) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(t.host, t.port)
	var conn net.Conn
	if t.jump != "" && depth < 5 {
		hops := strings.Split(t.jump, ",")
		var via *ssh.Client
		for i, hop := range hops {
			var c *ssh.Client
			if i == 0 {
				c, err = h.dial(ctx, hop, o, depth+1)
			} else {
				c, err = clientVia(ctx, via, hop, o)
			}
			if err != nil {
				return nil, fmt.Errorf("ProxyJump %s: %w", hop, err)
			}
			h.jumps = append(h.jumps, c)
			via = c
		}
		conn, err = via.DialContext(ctx, "tcp", addr)
	} else {
		d := net.Dialer{Timeout: o.Timeout}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return handshake(conn, t, addr, o)
}

// clientVia connects to spec through an established connection (a ProxyJump hop).
func clientVia(ctx context.Context, via *ssh.Client, spec string, o SSHOptions) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(t.host, t.port)
	conn, err := via.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return handshake(conn, t, addr, o)
}

// handshake runs the SSH handshake for t on conn, closing conn if it fails.
func handshake(conn net.Conn, t target, addr string, o SSHOptions) (*ssh.Client, error) {
	cfg, err := clientConfig(t, addr, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", t.user, addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// clientConfig builds the authentication (ssh-agent, then identity files) and the strict host
// key check for t.
func clientConfig(t target, addr string, o SSHOptions) (*ssh.ClientConfig, error) {
	var signers []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			if s, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
	}
	var keyErrs []string
	for _, id := range t.identities {
		data, err := os.ReadFile(id)
		if err != nil {
			continue
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			keyErrs = append(keyErrs, fmt.Sprintf("%s: %v (add it to ssh-agent)", id, err))
			continue
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		msg := "no SSH key: start ssh-agent and ssh-add your key, or set IdentityFile in ~/.ssh/config"
		if len(keyErrs) > 0 {
			msg += "; " + strings.Join(keyErrs, "; ")
		}
		return nil, errors.New(msg)
	}
	db, err := knownhosts.NewDB(o.KnownHostsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", o.KnownHostsFile, err)
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		unknown := db == nil // no known_hosts file: every host is unknown
		var err error
		if !unknown {
			if err = db.HostKeyCallback()(hostname, remote, key); err == nil {
				return nil
			}
			unknown = knownhosts.IsHostUnknown(err)
		}
		fp := key.Type() + " " + ssh.FingerprintSHA256(key)
		host, port, _ := net.SplitHostPort(addr)
		scan := "ssh-keyscan "
		if port != "22" {
			scan += "-p " + port + " "
		}
		scan += host + " >> " + o.KnownHostsFile
		switch {
		case knownhosts.IsHostKeyChanged(err):
			return &HostKeyError{Host: addr, Fingerprint: fp, Changed: true,
				Hint: fmt.Sprintf("if the server was really reinstalled, remove its old key (ssh-keygen -R %s -f %s) and trust the new one after checking its fingerprint: %s", knownhosts.Normalize(addr), o.KnownHostsFile, scan)}
		case unknown:
			return &HostKeyError{Host: addr, Fingerprint: fp,
				Hint: fmt.Sprintf("check the fingerprint with the server's admin, then trust it: %s", scan)}
		}
		return err
	}
	cfg := &ssh.ClientConfig{
		User:            t.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: check,
		Timeout:         o.Timeout,
	}
	if db != nil {
		cfg.HostKeyAlgorithms = db.HostKeyAlgorithms(addr)
	}
	return cfg, nil
}

// Name implements Host.
func (h *SSH) Name() string { return h.name }

// Close implements Host.
func (h *SSH) Close() error {
	if h.ctl != nil {
		h.ctl.close()
	}
	if h.sftp != nil {
		h.sftp.Close()
	}
	if h.client != nil {
		h.client.Close()
	}
	for i := len(h.jumps) - 1; i >= 0; i-- {
		h.jumps[i].Close()
	}
	return nil
}

// ReadFile implements Host.
func (h *SSH) ReadFile(p string) ([]byte, error) {
	f, err := h.sftp.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (h *SSH) writeTemp(p string, data []byte) (string, error) {
	tmp := p + ".tmp-" + rand.Text()
	f, err := h.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		h.sftp.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// WriteFile implements Host.
func (h *SSH) WriteFile(p string, data []byte) error {
	tmp, err := h.writeTemp(p, data)
	if err != nil {
		return err
	}
	if err := h.sftp.PosixRename(tmp, p); err != nil {
		h.sftp.Remove(tmp)
		return err
	}
	return nil
}

// AppendFile implements Host.
func (h *SSH) AppendFile(p string, data []byte) error {
	f, err := h.sftp.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	if err != nil {
		return err
	}
	// OpenSSH's server appends on O_APPEND; write at the end explicitly as well.
	if fi, err := f.Stat(); err == nil {
		if _, err := f.Seek(fi.Size(), io.SeekStart); err != nil {
			f.Close()
			return err
		}
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// CreateExclusive implements Host: a hard link (hardlink@openssh.com) of a complete temporary
// file, which fails if p exists.
func (h *SSH) CreateExclusive(p string, data []byte) error {
	tmp, err := h.writeTemp(p, data)
	if err != nil {
		return err
	}
	defer h.sftp.Remove(tmp)
	if err := h.sftp.Link(tmp, p); err != nil {
		if _, serr := h.sftp.Lstat(p); serr == nil {
			return &fs.PathError{Op: "create", Path: p, Err: fs.ErrExist}
		}
		return err
	}
	return nil
}

// Mkdir implements Host.
func (h *SSH) Mkdir(p string) error {
	err := h.sftp.Mkdir(p)
	if err != nil {
		if _, serr := h.sftp.Lstat(p); serr == nil {
			return &fs.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
		}
	}
	return err
}

// MkdirAll implements Host.
func (h *SSH) MkdirAll(p string) error { return h.sftp.MkdirAll(p) }

// Lstat implements Host.
func (h *SSH) Lstat(p string) (fs.FileInfo, error) { return h.sftp.Lstat(p) }

// Readlink implements Host.
func (h *SSH) Readlink(p string) (string, error) { return h.sftp.ReadLink(p) }

// Symlink implements Host.
func (h *SSH) Symlink(target, p string) error { return h.sftp.Symlink(target, p) }

// Rename implements Host with posix-rename@openssh.com, which is rename(2).
func (h *SSH) Rename(oldpath, newpath string) error { return h.sftp.PosixRename(oldpath, newpath) }

// Chmod implements Host.
func (h *SSH) Chmod(p string, mode fs.FileMode) error { return h.sftp.Chmod(p, mode) }

// Remove implements Host.
func (h *SSH) Remove(p string) error { return h.sftp.Remove(p) }

// ReadDir implements Host.
func (h *SSH) ReadDir(p string) ([]fs.DirEntry, error) {
	infos, err := h.sftp.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(infos))
	for i, fi := range infos {
		out[i] = fs.FileInfoToDirEntry(fi)
	}
	return out, nil
}

// RemoveAll implements Host with one rm -rf on the host: SFTP would take a round trip a file.
func (h *SSH) RemoveAll(p string) error {
	q := Quote(p)
	_, err := h.Output(context.Background(), "rm -rf -- "+q+" 2>/dev/null || { chmod -R u+w -- "+q+" && rm -rf -- "+q+"; }")
	return err
}

// Sync implements Host.
func (h *SSH) Sync(p string) error {
	_, err := h.Output(context.Background(), "sync -f -- "+Quote(p)+" 2>/dev/null || sync")
	return err
}

// Output implements Host: ferry's own short commands run one after another in one shell on the
// host, so each costs a round trip instead of a new SSH session (about 85 ms on OpenSSH).
func (h *SSH) Output(ctx context.Context, script string) ([]byte, error) {
	h.ctlMu.Lock()
	defer h.ctlMu.Unlock()
	if h.ctl == nil {
		c, err := startCtl(h.client)
		if err != nil {
			return nil, fmt.Errorf("%s: start shell: %w", h.name, err)
		}
		h.ctl = c
	}
	out, status, err := h.ctl.run(script)
	if err != nil {
		h.ctl.close()
		h.ctl = nil
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	if status != 0 {
		return out, fmt.Errorf("%s: exit status %d: %s", h.name, status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// ctlShell is a sh on the host reading commands from stdin. Each command runs in a subshell
// with its output (stdout and stderr) followed by a line with a random marker and the status.
type ctlShell struct {
	sess *ssh.Session
	in   io.WriteCloser
	out  *bufio.Reader
	mark []byte
}

func startCtl(c *ssh.Client) (*ctlShell, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Start("exec sh"); err != nil {
		s.Close()
		return nil, err
	}
	return &ctlShell{sess: s, in: in, out: bufio.NewReaderSize(out, 64<<10), mark: []byte("ferry-done-" + rand.Text())}, nil
}

func (c *ctlShell) run(script string) ([]byte, int, error) {
	if _, err := fmt.Fprintf(c.in, "(%s\n) </dev/null 2>&1; printf '\\n%s %%d\\n' \"$?\"\n", script, c.mark); err != nil {
		return nil, 0, err
	}
	var buf []byte
	for {
		line, err := c.out.ReadBytes('\n')
		if err != nil {
			return nil, 0, fmt.Errorf("shell on the host: %w", err)
		}
		if bytes.HasPrefix(line, c.mark) && (len(buf) == 0 || buf[len(buf)-1] == '\n') {
			status, err := strconv.Atoi(string(bytes.TrimSpace(line[len(c.mark):])))
			if err != nil {
				return nil, 0, fmt.Errorf("shell on the host: bad status line %q", line)
			}
			return bytes.TrimSuffix(buf, []byte("\n")), status, nil
		}
		buf = append(buf, line...)
	}
}

func (c *ctlShell) close() {
	c.in.Close()
	c.sess.Close()
}

// Unpack implements Host: the stream is gzipped and piped into tar -x on the host.
func (h *SSH) Unpack(ctx context.Context, dir string, r io.Reader) error {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(countWriter{pw, &h.Sent}, gzip.BestSpeed)
		_, err := io.Copy(zw, r)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	err := h.run(ctx, "tar -x -z -p --no-same-owner -f - -C "+Quote(dir), pr)
	pr.CloseWithError(errors.New("upload ended"))
	return err
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// run runs a command of ferry's own, with stdin, failing with its stderr.
func (h *SSH) run(ctx context.Context, cmd string, stdin io.Reader) error {
	var stderr bytes.Buffer
	err := h.Run(ctx, Command{Script: cmd, Stdout: io.Discard, Stderr: &stderr, stdin: stdin})
	if err != nil && stderr.Len() > 0 {
		return fmt.Errorf("%s: %w: %s", h.name, err, strings.TrimSpace(stderr.String()))
	}
	return err
}

// Run implements Host. The environment is set by env(1) in the command line, since servers
// accept only few variables through SSH's own mechanism.
func (h *SSH) Run(ctx context.Context, c Command) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	s, err := h.client.NewSession()
	if err != nil {
		return fmt.Errorf("%s: new session: %w", h.name, err)
	}
	defer s.Close()
	var line strings.Builder
	if c.Dir != "" {
		line.WriteString("cd " + Quote(c.Dir) + " && ")
	}
	line.WriteString("exec env")
	for _, kv := range c.Env {
		line.WriteString(" " + Quote(kv))
	}
	line.WriteString(" sh -c " + Quote(c.Script))
	s.Stdout, s.Stderr, s.Stdin = c.Stdout, c.Stderr, c.stdin
	if err := s.Start(line.String()); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		var ee *ssh.ExitError
		var lost *ssh.ExitMissingError
		switch {
		case errors.As(err, &ee) && ee.Signal() != "":
			return fmt.Errorf("killed by signal %s", ee.Signal())
		case errors.As(err, &ee):
			return fmt.Errorf("exit status %d", ee.ExitStatus())
		case errors.As(err, &lost):
			return fmt.Errorf("connection to %s lost while the command ran", h.name)
		}
		return err
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		if ctx.Err() == context.DeadlineExceeded && c.Timeout > 0 {
			return fmt.Errorf("timed out after %s", c.Timeout)
		}
		return ctx.Err()
	}
}

// DialContext implements Host: the connection is opened by the host (direct-tcpip), so
// 127.0.0.1 is the host's own loopback.
func (h *SSH) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.client.DialContext(ctx, network, addr)
}

// BytesSent is how many bytes upload streams put on the connection, compressed.
func (h *SSH) BytesSent() int64 { return h.Sent.Load() }

// Hostname returns the host's name as it reports it.
func (h *SSH) Hostname() string {
	var out bytes.Buffer
	if err := h.Run(context.Background(), Command{Script: "hostname", Stdout: &out, Stderr: io.Discard}); err != nil {
		return h.name
	}
	return strings.TrimSpace(out.String())
}
