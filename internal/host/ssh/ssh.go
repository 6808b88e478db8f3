// Package ssh is the host.Host of a machine reached over one SSH connection
// (golang.org/x/crypto/ssh). Ferry's scripts run one after another in one shell on the host, so
// each costs one round trip; an upload is one session fed a gzipped tar stream; the swap is
// posix-rename@openssh.com over SFTP, the one portable rename(2) that never follows a symlink.
// Nothing is installed on the host. Files: dial.go (connecting, ~/.ssh/config, ProxyJump),
// proxycommand.go (ProxyCommand), knownhosts.go (authentication, strict host keys,
// HostKeyAlias), shell.go (scripts), exec.go (hooks), upload.go (the tar stream).
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ferry-deploy/ferry/internal/host"
)

// SSH is a host reached over one SSH connection.
type SSH struct {
	name   string
	client *ssh.Client
	jumps  []*ssh.Client

	shellMu sync.Mutex
	shell   *shell

	sftpOnce sync.Once
	sftp     *sftp.Client
	sftpErr  error

	spareMu sync.Mutex
	spare   chan spareSession // a session opened ahead for the next upload

	roundTrips     atomic.Int64
	sent, received atomic.Int64
}

var _ host.Host = (*SSH)(nil)

// Name implements host.Host.
func (h *SSH) Name() string { return h.name }

// Close implements host.Host. The connection goes first: every answer ferry waits for has come,
// and closing the channels one by one would wait a round trip for the host to close them too.
func (h *SSH) Close() error {
	if h.client != nil {
		h.client.Close()
	}
	for i := len(h.jumps) - 1; i >= 0; i-- {
		h.jumps[i].Close()
	}
	h.shellMu.Lock()
	if h.shell != nil {
		h.shell.close()
		h.shell = nil
	}
	h.shellMu.Unlock()
	h.sftpOnce.Do(func() { h.sftpErr = errors.New("closed") })
	if h.sftp != nil {
		h.sftp.Close()
	}
	return nil
}

// RoundTrips implements host.Counter.
func (h *SSH) RoundTrips() int64 { return h.roundTrips.Load() }

// BytesOnWire implements host.Counter.
func (h *SSH) BytesOnWire() (sent, received int64) { return h.sent.Load(), h.received.Load() }

// rt counts n requests that wait for the host's answer.
func (h *SSH) rt(n int64) { h.roundTrips.Add(n) }

// Warm opens ahead, in the background, the session of the next upload and the SFTP channel of the swap
// are opened in the background, while the first script runs.
func (h *SSH) Warm(upload, swap bool) {
	if upload {
		h.spareMu.Lock()
		if h.spare == nil {
			ch := make(chan spareSession, 1)
			h.spare = ch
			go func() {
				h.rt(1)
				s, err := h.client.NewSession()
				ch <- spareSession{s, err}
			}()
		}
		h.spareMu.Unlock()
	}
	if swap {
		go h.sftpClient()
	}
}

type spareSession struct {
	s   *ssh.Session
	err error
}

// newSession returns the session opened ahead by Warm, or opens one.
func (h *SSH) newSession() (*ssh.Session, error) {
	h.spareMu.Lock()
	ch := h.spare
	h.spare = nil
	h.spareMu.Unlock()
	if ch != nil {
		if sp := <-ch; sp.err == nil {
			return sp.s, nil
		}
	}
	h.rt(1)
	s, err := h.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("%s: new session: %w", h.name, err)
	}
	return s, nil
}

func (h *SSH) sftpClient() (*sftp.Client, error) {
	h.sftpOnce.Do(func() {
		h.rt(2) // the session, and the version exchange sent right behind the subsystem request
		h.sftp, h.sftpErr = startSFTP(h.client)
		if h.sftpErr != nil {
			h.sftpErr = fmt.Errorf("%s: start sftp: %w", h.name, h.sftpErr)
		}
	})
	return h.sftp, h.sftpErr
}

// startSFTP opens an SFTP session without waiting for the subsystem request's reply: the client's
// first packet follows it on the channel, and the server's answer to that packet proves the
// subsystem started. A server that never answers (it refused the subsystem, which then sends no
// reply) fails it after a minute.
func startSFTP(c *ssh.Client) (*sftp.Client, error) {
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	go io.Copy(io.Discard, ch.Stderr())
	name := struct{ Name string }{"sftp"}
	if _, err := ch.SendRequest("subsystem", false, ssh.Marshal(&name)); err != nil {
		ch.Close()
		return nil, err
	}
	watchdog := time.AfterFunc(time.Minute, func() { ch.Close() })
	defer watchdog.Stop()
	client, err := sftp.NewClientPipe(ch, ch)
	if err != nil {
		ch.Close()
		return nil, err
	}
	return client, nil
}

// Rename implements host.Host with posix-rename@openssh.com, which is rename(2).
func (h *SSH) Rename(ctx context.Context, oldpath, newpath string) error {
	c, err := h.sftpClient()
	if err != nil {
		return err
	}
	h.rt(1)
	err = c.PosixRename(oldpath, newpath)
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	return err
}

// KeepAlive sends a request the server answers, so that the connection does not look idle.
func (h *SSH) KeepAlive() error {
	_, _, err := h.client.SendRequest("keepalive@openssh.com", true, nil)
	return err
}

// DialContext implements host.Host: the connection is opened by the host (direct-tcpip), so
// 127.0.0.1 is the host's own loopback.
func (h *SSH) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h.rt(1)
	c, err := h.client.DialContext(ctx, network, addr)
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) && oce.Reason == ssh.Prohibited {
		return nil, fmt.Errorf("%s: connect to %s: %w", h.name, addr, host.ErrNoForwarding)
	}
	return c, err
}

// countingConn counts the bytes of the SSH connection in each direction.
type countingConn struct {
	net.Conn
	sent, received *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.received.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}
