package local

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// linkCopyWorkers is how many directories are copied at once: link(2) takes the lock of the
// directory it writes, so directories copy in parallel where the files of one cannot.
const linkCopyWorkers = 4

// LinkCopy implements host.LinkCopier: cp -al in process, a few directories at a time.
func (*Local) LinkCopy(ctx context.Context, src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", src)
	}
	if err := unix.Mkdir(dst, 0o700); err != nil {
		return &os.PathError{Op: "mkdir", Path: dst, Err: err}
	}
	c := &linkCopy{ctx: ctx, root: os.Geteuid() == 0, jobs: make(chan [2]string, 256)}
	var workers sync.WaitGroup
	for range linkCopyWorkers {
		workers.Go(func() {
			for j := range c.jobs {
				c.dir(j[0], j[1])
			}
		})
	}
	c.pending.Add(1)
	c.dir(src, dst)
	c.pending.Wait()
	close(c.jobs)
	workers.Wait()
	if c.err != nil {
		removeAll(dst)
	}
	return c.err
}

// removeAll removes what a failed copy made, read-only directories (copied with their mode)
// included.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

type linkCopy struct {
	ctx     context.Context
	root    bool // may give directories their owner, as cp -a does as root
	jobs    chan [2]string
	pending sync.WaitGroup // directories not yet copied
	mu      sync.Mutex
	err     error
}

func (c *linkCopy) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *linkCopy) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.ctx.Err() != nil {
		c.err = c.ctx.Err()
	}
	return c.err != nil
}

// dir fills directory dst, made already, from src: its entries, then its mode, owner and
// times, since writing the entries changes its mtime and a read-only mode would refuse them.
// A directory inside is made here, so that dst is complete when its times are set, and
// filled by whichever worker is free.
func (c *linkCopy) dir(src, dst string) {
	defer c.pending.Done()
	if c.failed() {
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		c.fail(&os.PathError{Op: "lstat", Path: src, Err: err})
		return
	}
	// Links are made relative to the two directories' descriptors: the kernel then looks up
	// one name per link, not every component of two long paths.
	from, err := openDir(src)
	if err != nil {
		c.fail(err)
		return
	}
	defer from.Close()
	to, err := openDir(dst)
	if err != nil {
		c.fail(err)
		return
	}
	defer to.Close()
	entries, err := from.ReadDir(-1)
	if err != nil {
		c.fail(err)
		return
	}
	fromFD, toFD := int(from.Fd()), int(to.Fd())
	for i, e := range entries {
		if i%256 == 255 && c.failed() {
			return // cancelled: a large directory is not finished first
		}
		name := e.Name()
		if e.IsDir() {
			if err := unix.Mkdirat(toFD, name, 0o700); err != nil {
				c.fail(&os.PathError{Op: "mkdir", Path: filepath.Join(dst, name), Err: err})
				return
			}
			c.pending.Add(1)
			s, d := filepath.Join(src, name), filepath.Join(dst, name)
			select {
			case c.jobs <- [2]string{s, d}:
			default:
				c.dir(s, d) // every worker busy and the queue full: this one does it
			}
			continue
		}
		// Flags 0: a symlink is linked itself, never followed.
		if err := unix.Linkat(fromFD, name, toFD, name, 0); err != nil {
			c.fail(&os.LinkError{Op: "link", Old: filepath.Join(src, name), New: filepath.Join(dst, name), Err: err})
			return
		}
	}
	// As cp -a: the owner where permitted (as root), else at least the group, if this user is
	// in it; extended attributes (ACLs, SELinux labels) where the filesystem keeps them.
	if c.root {
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			c.fail(&os.PathError{Op: "chown", Path: dst, Err: err})
			return
		}
	} else {
		_ = unix.Lchown(dst, -1, int(st.Gid))
	}
	copyXattrs(src, dst)
	if err := unix.Chmod(dst, uint32(st.Mode)&0o7777); err != nil {
		c.fail(&os.PathError{Op: "chmod", Path: dst, Err: err})
		return
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		c.fail(&os.PathError{Op: "utimes", Path: dst, Err: err})
	}
}

// copyXattrs gives dst the extended attributes of src, as far as it may: cp -a keeps what it
// can and says nothing of the rest.
func copyXattrs(src, dst string) {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size <= 0 {
		return
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(src, names); err != nil {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil || n < 0 {
			continue
		}
		value := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, value); err == nil {
			_ = unix.Lsetxattr(dst, name, value[:n], 0)
		}
	}
}

// openDir opens directory p, never through a link.
func openDir(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}
