package host

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Local is this machine, reached through the filesystem directly.
type Local struct{}

// NewLocal returns the local host.
func NewLocal() *Local { return &Local{} }

// Name implements Host.
func (*Local) Name() string { return "local" }

// Close implements Host.
func (*Local) Close() error { return nil }

// ReadFile implements Host.
func (*Local) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// WriteFile implements Host.
func (l *Local) WriteFile(p string, data []byte) error {
	tmp := p + ".tmp-" + rand.Text()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(p))
}

// AppendFile implements Host.
func (*Local) AppendFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CreateExclusive implements Host. The content is written to a temporary file first and then
// hard-linked to p, which fails if p exists: p never exists without its full content, even if
// the process is killed halfway.
func (*Local) CreateExclusive(p string, data []byte) error {
	tmp := p + ".new-" + rand.Text()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// Mkdir implements Host.
func (*Local) Mkdir(p string) error { return os.Mkdir(p, 0o755) }

// MkdirAll implements Host.
func (*Local) MkdirAll(p string) error { return os.MkdirAll(p, 0o755) }

// Lstat implements Host.
func (*Local) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }

// Readlink implements Host.
func (*Local) Readlink(p string) (string, error) { return os.Readlink(p) }

// Symlink implements Host.
func (*Local) Symlink(target, p string) error { return os.Symlink(target, p) }

// Rename implements Host.
func (*Local) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Chmod implements Host.
func (*Local) Chmod(p string, mode fs.FileMode) error { return os.Chmod(p, mode) }

// Remove implements Host.
func (*Local) Remove(p string) error { return os.Remove(p) }

// ReadDir implements Host.
func (*Local) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }

// RemoveAll implements Host. Files are unlinked by a few workers at once, then the directories
// deepest first: removing a release of thousands of files is most of a cleanup.
func (*Local) RemoveAll(p string) error {
	var files, dirs []string
	err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, q)
		default:
			files = append(files, q)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && len(files) > 64 {
		var g errgroup.Group
		const workers = 4
		for w := range workers {
			g.Go(func() error {
				for i := w; i < len(files); i += workers {
					if err := os.Remove(files[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
				return nil
			})
		}
		if g.Wait() == nil {
			for i := len(dirs) - 1; i >= 0; i-- {
				if os.Remove(dirs[i]) != nil {
					break // something is left: let removeAll deal with it
				}
			}
		}
	}
	return removeAll(p)
}

func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// A read-only directory inside the tree: make directories writable, then try again. WalkDir
	// does not follow symlinks, so nothing outside p is touched.
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// Sync implements Host. syncfs(2) flushes the whole filesystem that holds p in one call, which is
// far cheaper than an fsync per file of a release.
func (*Local) Sync(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// Run implements Host. The command runs in its own process group so that a timeout or an
// interrupt stops everything it started, not only the shell.
func (*Local) Run(ctx context.Context, c Command) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", c.Script)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded && c.Timeout > 0 {
		return fmt.Errorf("timed out after %s", c.Timeout)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Output implements Host.
func (*Local) Output(ctx context.Context, script string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// DialContext implements Host.
func (*Local) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Unpack implements Host. Entries are read in stream order, directories created at once, and
// the creation of files and hard links, which is most of the time of a deploy, spread over a few
// workers: the filesystem creates inodes in parallel far faster than one by one.
func (*Local) Unpack(ctx context.Context, dir string, r io.Reader) error {
	type dirAttr struct {
		path  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirAttr
	u := newUnpacker(ctx)
	buf := make([]byte, 256<<10)
	err := func() error {
		tr := tar.NewReader(r)
		for {
			if err := u.ctx.Err(); err != nil {
				return err
			}
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read upload stream: %w", err)
			}
			target, err := inside(dir, hdr.Name)
			if err != nil {
				return err
			}
			mode := fs.FileMode(hdr.Mode).Perm() | fs.FileMode(hdr.Mode)&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
			switch hdr.Typeflag {
			case tar.TypeDir:
				if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
				// The final mode is set after the files are in: a read-only directory of the
				// build must still receive its files.
				dirs = append(dirs, dirAttr{target, mode, hdr.ModTime})
			case tar.TypeReg:
				if hdr.Size > smallFile {
					if err := writeFile(target, tr, mode, hdr.ModTime, buf); err != nil {
						return err
					}
					continue
				}
				data := make([]byte, hdr.Size)
				if _, err := io.ReadFull(tr, data); err != nil {
					return fmt.Errorf("read upload stream: %w", err)
				}
				u.do(func() error { return writeFile(target, bytes.NewReader(data), mode, hdr.ModTime, nil) })
			case tar.TypeSymlink:
				if err := os.Symlink(hdr.Linkname, target); err != nil {
					return err
				}
			case tar.TypeLink:
				from, err := inside(dir, hdr.Linkname)
				if err != nil {
					return err
				}
				u.do(func() error { return os.Link(from, target) })
			default:
				return fmt.Errorf("upload stream: %q has unsupported type %q", hdr.Name, hdr.Typeflag)
			}
		}
	}()
	if werr := u.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
		_ = os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

// unpackWorkers create files and links at once (8 measured no faster than 4 on 2 cores).
const unpackWorkers = 4

// smallFile is the size up to which a file is read into memory and written by a worker.
const smallFile = 256 << 10

// unpacker runs file creations on a few workers and keeps the first error.
type unpacker struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	work   chan func() error
	wg     sync.WaitGroup
}

func newUnpacker(ctx context.Context) *unpacker {
	u := &unpacker{work: make(chan func() error, 64)}
	u.ctx, u.cancel = context.WithCancelCause(ctx)
	for range unpackWorkers {
		u.wg.Go(func() {
			for fn := range u.work {
				if u.ctx.Err() != nil {
					continue
				}
				if err := fn(); err != nil {
					u.cancel(err)
				}
			}
		})
	}
	return u
}

func (u *unpacker) do(fn func() error) {
	select {
	case u.work <- fn:
	case <-u.ctx.Done():
	}
}

// wait lets the workers finish and returns the first error of any.
func (u *unpacker) wait() error {
	close(u.work)
	u.wg.Wait()
	err := context.Cause(u.ctx) // nil unless a worker failed or ctx ended
	u.cancel(nil)
	return err
}

// umask is the process's file mode creation mask, read once at start.
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()

// writeFile creates p with the content of r, its mode and its mtime, in as few system calls as
// it can: creating thousands of files is most of a first deploy.
func writeFile(p string, r io.Reader, mode fs.FileMode, mtime time.Time, buf []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, r, buf); err != nil {
		f.Close()
		return err
	}
	if mode&umask != 0 || mode&^fs.ModePerm != 0 {
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return err
		}
	}
	ts := []unix.Timeval{unix.NsecToTimeval(mtime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())}
	if err := unix.Futimes(int(f.Fd()), ts); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// inside joins name to dir and refuses any name that would leave dir.
func inside(dir, name string) (string, error) {
	clean := filepath.Clean("/" + name)
	if clean == "/" || strings.Contains(name, "\x00") || filepath.Clean(name) != strings.TrimPrefix(clean, "/") {
		return "", fmt.Errorf("upload stream: refusing entry %q outside %s", name, dir)
	}
	return filepath.Join(dir, clean), nil
}
