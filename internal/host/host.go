// Package host gives the release engine one interface to a machine: file operations on absolute
// paths, a command runner, and a tar unpacker for bulk uploads. local.go works on this machine's
// filesystem; an SSH implementation sits behind the same interface. This package knows nothing of
// releases, config or the CLI.
package host

import (
	"context"
	"io"
	"io/fs"
	"net"
	"time"
)

// Host is a machine that ferry deploys to. Paths are absolute paths on that machine.
type Host interface {
	// Name is how the host is shown to people ("local", "web1").
	Name() string

	ReadFile(p string) ([]byte, error)
	// WriteFile replaces p atomically: a temporary file is written, synced and renamed over p.
	WriteFile(p string, data []byte) error
	// AppendFile appends data to p (creating it) and syncs it.
	AppendFile(p string, data []byte) error
	// CreateExclusive creates p with data, failing with fs.ErrExist if p exists. It is atomic.
	CreateExclusive(p string, data []byte) error
	Mkdir(p string) error
	MkdirAll(p string) error
	Lstat(p string) (fs.FileInfo, error)
	Readlink(p string) (string, error)
	Symlink(target, p string) error
	// Rename is rename(2): atomic on one filesystem, replacing p's target when it is a file or link.
	Rename(oldpath, newpath string) error
	Remove(p string) error
	Chmod(p string, mode fs.FileMode) error
	// RemoveAll removes p and everything below it without following symlinks, making read-only
	// directories writable as needed. A missing p is not an error.
	RemoveAll(p string) error
	// ReadDir lists the names in directory p.
	ReadDir(p string) ([]fs.DirEntry, error)
	// Sync makes everything written under p durable, and p's own directory entry too.
	Sync(p string) error

	// Unpack extracts the tar stream r into directory dir. Hard links in the stream name their
	// target relative to dir; no entry may leave dir.
	Unpack(ctx context.Context, dir string, r io.Reader) error

	// Run runs cmd with sh -c and waits for it.
	Run(ctx context.Context, cmd Command) error

	// Output runs one of ferry's own short commands and returns its output (stdout and stderr
	// together); a non-zero exit is an error carrying that output.
	Output(ctx context.Context, script string) ([]byte, error)

	// DialContext connects to addr as seen from the host (its loopback is the host's own), for
	// health checks.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)

	// Close releases the connection, if any.
	Close() error
}

// Command is a shell command to run on a host.
type Command struct {
	Script  string
	Dir     string
	Env     []string // KEY=value pairs added to the host's environment
	Stdout  io.Writer
	Stderr  io.Writer
	Timeout time.Duration // zero: no limit besides ctx

	stdin io.Reader // for ferry's own commands (uploads)
}
