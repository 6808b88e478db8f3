// Package host is the contract between the release engine and a machine: a handful of requests,
// each one round trip on a remote host. The engine describes what must happen as a POSIX sh
// script (every value through Quote) and the transport runs it and returns its answer; the bulk
// upload, the swap's rename(2), hooks and health-check connections are the only other requests.
// The transports live in host/local and host/ssh; host/hosttest is the conformance suite both
// run. This package knows nothing of releases, config or the CLI.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Host is a machine that ferry deploys to. Paths are absolute paths on that machine. A host
// needs a POSIX shell with GNU or BusyBox userland (cp, find, tar, gzip, sha256sum); nothing else
// is installed on it. Implementations are safe for concurrent use.
type Host interface {
	// Name is how the host is shown to people ("local", "web1").
	Name() string

	// Script runs one of ferry's own sh scripts and returns what it printed, standard output and
	// standard error together. A script that exits non-zero returns an *ExitError carrying that
	// output. A script may be of any length: it is never passed as a command-line argument.
	Script(ctx context.Context, script string) ([]byte, error)

	// Unpack runs before, then extracts the tar stream r into directory dir, then runs after,
	// as one request, and returns what after printed. When before fails, nothing is extracted
	// and after does not run. Entries of the stream are relative to dir and never leave it.
	Unpack(ctx context.Context, dir string, r io.Reader, before, after string) ([]byte, error)

	// Rename is rename(2): atomic on one filesystem, replacing newpath when it is a file or a
	// symlink (never following it). A missing oldpath is an error wrapping fs.ErrNotExist.
	Rename(ctx context.Context, oldpath, newpath string) error

	// Run runs a user's command (a hook or a service command) with sh -c and waits for it. The
	// command runs in a process group of its own; when ctx ends or Timeout passes, the whole
	// group is killed, children included.
	Run(ctx context.Context, cmd Command) error

	// DialContext connects to addr as seen from the host (its loopback is the host's own), for
	// health checks. A host that refuses to forward connections returns an error wrapping
	// ErrNoForwarding.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)

	// Close releases the connection, if any.
	Close() error
}

// A LinkCopier copies a directory tree in process as hard links, as cp -al would: directories
// made anew with the source's mode, owner (when permitted) and times, every other entry a hard
// link; no symlink is followed. The local host is one: there the copy runs while the engine
// plans, instead of inside a script. A copy that fails removes what it made of dst.
type LinkCopier interface {
	LinkCopy(ctx context.Context, src, dst string) error
}

// ErrNoForwarding is wrapped by DialContext's error when the host refuses to open connections
// for ferry (an sshd with AllowTcpForwarding no).
var ErrNoForwarding = errors.New("the server refuses TCP forwarding (AllowTcpForwarding no in its sshd_config)")

// Command is a user's shell command to run on a host.
type Command struct {
	Script  string
	Dir     string
	Env     []string // KEY=value pairs added to the host's environment
	Stdout  io.Writer
	Stderr  io.Writer
	Timeout time.Duration // zero: no limit besides ctx
}

// ExitError is a script or command that ran and failed.
type ExitError struct {
	Host   string
	Code   int    // exit status; -1 when killed by a signal
	Signal string // the signal that killed it, if any ("KILL")
	Output string // what a Script printed (Run streams its output instead)
}

func (e *ExitError) Error() string {
	var msg string
	if e.Signal != "" {
		msg = "killed by signal " + e.Signal
	} else {
		msg = fmt.Sprintf("exit status %d", e.Code)
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

// TimeoutError is a command that ran out of its Timeout and was killed with its process group.
type TimeoutError struct {
	Timeout time.Duration
}

func (e *TimeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.Timeout) }

// Counter is implemented by transports that count what crosses the network.
type Counter interface {
	// RoundTrips counts the requests that waited for an answer from the host since the
	// connection was made, after the SSH handshake. Requests sent together count once each.
	RoundTrips() int64
	// BytesOnWire counts the bytes sent and received on the connection, handshake included.
	BytesOnWire() (sent, received int64)
}
