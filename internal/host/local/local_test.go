package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/host/hosttest"
)

func TestConformance(t *testing.T) {
	hosttest.Run(t, func(*testing.T) host.Host { return New() })
}

// LinkCopy is cp -al: the same tree, the same inodes, the same directory modes and times, links
// linked and never followed.
func TestLinkCopyIsCpAl(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	outside := t.TempDir()
	for _, d := range []string{"a/b/c", "ro", "sticky", "e"} {
		must(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	for i := range 300 {
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("a/b/f%d", i)), []byte("x"), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(src, "a/b/c/x"), []byte("y"), 0o4755))
	must(t, os.WriteFile(filepath.Join(src, "ro/x"), []byte("z"), 0o444))
	must(t, os.Symlink(outside, filepath.Join(src, "e/out")))
	must(t, os.Symlink("../a", filepath.Join(src, "e/up")))
	must(t, unix.Mkfifo(filepath.Join(src, "e/fifo"), 0o600))
	must(t, os.Chmod(filepath.Join(src, "sticky"), 0o1777|fs.ModeSticky))
	must(t, unix.Chmod(filepath.Join(src, "sticky"), 0o3775))
	// An extended attribute (where the filesystem keeps them: both copies then have it).
	_ = unix.Lsetxattr(filepath.Join(src, "a/b"), "user.ferry", []byte("kept"), 0)
	must(t, os.Chmod(filepath.Join(src, "ro"), 0o555))
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return os.Chtimes(p, old, old)
		}
		return err
	}))
	t.Cleanup(func() {
		filepath.WalkDir(filepath.Dir(src), func(p string, d fs.DirEntry, _ error) error { os.Chmod(p, 0o755); return nil })
	})

	cp, ours := filepath.Join(filepath.Dir(src), "cp"), filepath.Join(filepath.Dir(src), "ours")
	if out, err := exec.Command("cp", "-al", src, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -al: %v\n%s", err, out)
	}
	if err := New().LinkCopy(context.Background(), src, ours); err != nil {
		t.Fatal(err)
	}
	want, got := describeTree(t, cp), describeTree(t, ours)
	if len(want) < 300 || got != want {
		t.Errorf("LinkCopy made\n%s\ncp -al made\n%s", got, want)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written through a link: %v", entries)
	}
}

// describeTree lists every entry below dir: type, mode, owner, and for a directory its
// mtime, for anything else its inode (a hard link has its source's), for a link its target.
func describeTree(t *testing.T, dir string) string {
	var b strings.Builder
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		if d.IsDir() {
			fmt.Fprintf(&b, " mtime %d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
			if v := make([]byte, 64); true {
				if n, err := unix.Lgetxattr(p, "user.ferry", v); err == nil {
					fmt.Fprintf(&b, " user.ferry=%s", v[:n])
				}
			}
		} else {
			fmt.Fprintf(&b, " inode %d", st.Ino)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		}
		b.WriteByte('\n')
		return nil
	}))
	return b.String()
}

// A copy that fails (here: the destination exists) or is cancelled leaves nothing it made.
func TestLinkCopyFailsWhole(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 50 {
		must(t, os.MkdirAll(filepath.Join(src, fmt.Sprintf("d%d", i)), 0o755))
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("d%d/f", i)), nil, 0o644))
	}
	// A file in the way of one directory's entry: that link fails.
	dst := filepath.Join(dir, "dst")
	if err := New().LinkCopy(context.Background(), filepath.Join(src, "d0", "f"), dst); err == nil {
		t.Error("copying a file as a tree succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New().LinkCopy(ctx, src, dst); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: err = %v, want context.Canceled", err)
	}
	// Cancelled inside one large directory, it stops there and says so.
	big := filepath.Join(dir, "big")
	must(t, os.Mkdir(big, 0o755))
	for i := range 3000 {
		must(t, os.WriteFile(filepath.Join(big, fmt.Sprint(i)), nil, 0o644))
	}
	lc := &linkCopy{ctx: &cancelledAfter{Context: context.Background(), checks: 1}, jobs: make(chan [2]string, 1)}
	must(t, os.Mkdir(dst, 0o700))
	lc.pending.Add(1)
	lc.dir(big, dst)
	if entries, _ := os.ReadDir(dst); len(entries) == 0 || len(entries) > 256 || !errors.Is(lc.err, context.Canceled) {
		t.Errorf("a copy cancelled as it began a large directory linked %d of its 3000 entries, err %v", len(entries), lc.err)
	}
	removeAll(dst)
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed copy left %s: %v", dst, err)
	}
	must(t, os.Symlink(src, filepath.Join(dir, "link")))
	if err := New().LinkCopy(context.Background(), filepath.Join(dir, "link"), dst); err == nil {
		t.Error("a link to a tree was followed")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// cancelledAfter is a context that is cancelled once its Err has been asked checks times.
type cancelledAfter struct {
	context.Context
	checks int
}

func (c *cancelledAfter) Err() error {
	if c.checks > 0 {
		c.checks--
		return nil
	}
	return context.Canceled
}
