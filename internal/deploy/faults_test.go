package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/release"
)

// mountOrSkip mounts for a fault test; where mounting is impossible (not root, no privileges)
// the test skips with the reason, and fails instead under FERRY_TEST_DISALLOW_SKIP.
func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		msg := fmt.Sprintf("cannot mount %s on %s (%v): this fault needs root", fstype, target, err)
		if os.Getenv("FERRY_TEST_DISALLOW_SKIP") != "" {
			t.Fatalf("%s, and FERRY_TEST_DISALLOW_SKIP is set", msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
}

// readOnlyBind makes dir read-only in place with a read-only bind mount.
func readOnlyBind(t *testing.T, dir string) (undo func()) {
	t.Helper()
	mountOrSkip(t, dir, dir, "", unix.MS_BIND, "")
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	return func() { unix.Unmount(dir, unix.MNT_DETACH) }
}

// snapshotShared records shared/ for a later comparison.
func (s *site) snapshotShared() map[string]string {
	s.t.Helper()
	snap, err := invariants.Snapshot(filepath.Join(s.root, "shared"))
	if err != nil {
		s.t.Fatal(err)
	}
	return snap
}

func (s *site) sharedUnchanged(before map[string]string) {
	s.t.Helper()
	if diff := cmp.Diff(before, s.snapshotShared()); diff != "" {
		s.t.Fatalf("shared/ changed (-before +after):\n%s", diff)
	}
}

func TestFaultDiskFullDuringUpload(t *testing.T) {
	s := newSite(t, "shared:\n  dirs: [public/uploads]\n")
	os.MkdirAll(s.root, 0o755)
	mountOrSkip(t, "tmpfs", s.root, "tmpfs", 0, "size=1m")
	good := s.mustDeploy()
	os.WriteFile(filepath.Join(s.root, "shared/public/uploads/photo.jpg"), []byte("jpeg"), 0o644)
	before := s.snapshotShared()
	s.write("public/big.bin", strings.Repeat("x", 2<<20)) // larger than the disk
	_, err := s.deploy()
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v, want no space left", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	s.check()
	s.sharedUnchanged(before)
	// Once there is room again, the next deploy goes through.
	os.Remove(filepath.Join(s.src, "public/big.bin"))
	s.mustDeploy()
	s.sharedUnchanged(before)
}

func TestFaultReadOnlyReleasesDir(t *testing.T) {
	s := newSite(t, "")
	good := s.mustDeploy()
	undo := readOnlyBind(t, filepath.Join(s.root, "releases"))
	_, err := s.deploy()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "read-only file system") {
		t.Fatalf("err = %v, want a read-only file system error", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s", s.current())
	}
	undo()
	s.check()
	s.mustDeploy()
}

func TestFaultSharedNotWritable(t *testing.T) {
	s := newSite(t, "shared:\n  files: [.env]\n  dirs: [storage]\n")
	hostShared(t, s.root, ".env")
	good := s.mustDeploy()
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("SECRET=1\n"), 0o600)
	before := s.snapshotShared()
	// A new shared path must be created in shared/, which cannot be written.
	s.cfg.Shared.Dirs = append(s.cfg.Shared.Dirs, "public/uploads")
	undo := readOnlyBind(t, filepath.Join(s.root, "shared"))
	_, err := s.deploy()
	if err == nil || !strings.Contains(err.Error(), `link shared dir "public/uploads"`) {
		t.Fatalf("err = %v, want a failure linking the new shared dir", err)
	}
	undo()
	if s.current() != good {
		t.Fatalf("current = %s", s.current())
	}
	s.cfg.Shared.Dirs = s.cfg.Shared.Dirs[:1]
	s.check()
	s.sharedUnchanged(before)
}

func TestFaultConcurrentDeploys(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newSite(t, "keep_releases: 10\nhooks:\n  before_activate:\n    - run: sleep 0.2\n")
			s.mustDeploy()
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { _, errs[i] = s.deploy() })
			}
			wg.Wait()
			ok, locked := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, release.ErrLocked):
					locked++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			if ok < 1 || ok+locked != n {
				t.Fatalf("%d deploys at once: %d succeeded, %d locked out", n, ok, locked)
			}
			s.check()
			// Queued with a lock wait, all of them go through, one after another.
			for i := range n {
				wg.Go(func() {
					_, errs[i] = Deploy(context.Background(), s.cfg, DeployOptions{Options: s.optsWith(func(o *Options) { o.LockWait = time.Minute })}, s.rep)
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("queued deploy: %v", err)
				}
			}
			if got := len(s.releaseDirs()); got != 1+ok+n {
				t.Fatalf("%d releases, want %d", got, 1+ok+n)
			}
			s.check()
		})
	}
}

func TestFaultClockGoesBackwards(t *testing.T) {
	s := newSite(t, "")
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	deployAt := func(at time.Time) string {
		t.Helper()
		res, err := Deploy(context.Background(), s.cfg, DeployOptions{Options: s.opts, Now: func() time.Time { return at }}, s.rep)
		if err != nil {
			t.Fatal(err)
		}
		return res.Release
	}
	a := deployAt(now)
	b := deployAt(now.Add(-time.Hour)) // NTP stepped the clock back
	c := deployAt(now)                 // and forward again, into a second already used
	if a == b || a == c || b == c {
		t.Fatalf("ids collide: %s %s %s", a, b, c)
	}
	if c != "20261127-120000-2" {
		t.Fatalf("third id = %s, want the taken second suffixed", c)
	}
	// Order is the log's: rolling back from c goes to b, then to a, though b sorts first.
	if r := s.mustRollback(""); r.To != b {
		t.Fatalf("rollback went to %s, want %s", r.To, b)
	}
	if r := s.mustRollback(""); r.To != a {
		t.Fatalf("second rollback went to %s, want %s", r.To, a)
	}
}

// A release that cannot be deleted (here a mount point inside it; as often an app user's file
// ferry may not remove) or even moved (itself a mount point) never stops a deploy or a rollback:
// each warns and goes on.
func TestFaultReleaseThatCannotBeDeletedNeverStopsARun(t *testing.T) {
	s := newSite(t, "keep_releases: 2\n")
	a := s.mustDeploy()
	s.write("public/index.html", "b")
	b := s.mustDeploy()
	// b cannot even be moved: it is a mount point.
	mountOrSkip(t, filepath.Join(s.root, "releases", b), filepath.Join(s.root, "releases", b), "", unix.MS_BIND, "")
	cache := filepath.Join(s.root, "releases", a, "cache")
	os.Mkdir(cache, 0o755)
	mountOrSkip(t, "tmpfs", cache, "tmpfs", 0, "size=1m")
	t.Cleanup(func() { // the mount moves with the release into the trash
		moved, _ := filepath.Glob(filepath.Join(s.root, "releases", ".ferry-trash-*", "cache"))
		for _, m := range moved {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	})
	os.WriteFile(filepath.Join(cache, "x"), []byte("written by the app"), 0o644)

	s.write("public/index.html", "c")
	c := s.mustDeploy() // a goes: moved aside, but its mount point cannot be deleted
	s.write("public/index.html", "d")
	s.mustDeploy()
	if !s.rep.warned("could not delete") || !s.rep.warned("could not remove release "+b) {
		t.Errorf("no warning about what could not be deleted; warnings %q", s.rep.warnings)
	}
	// Nor can c's files be hard-linked from b, across mounts: c is made of sent files.
	if !s.rep.warned("cannot hard-link release " + b + " into the next one") {
		t.Errorf("no warning that b could not be hard-linked; warnings %q", s.rep.warnings)
	}
	if _, err := os.Stat(filepath.Join(s.root, "releases", b, "public/index.html")); err != nil {
		t.Errorf("release %s, which could not be moved, is not whole: %v", b, err)
	}
	if rb := s.mustRollback(""); rb.To != c {
		t.Errorf("rolled back to %s, want %s", rb.To, c)
	}
	if got := s.read("current/public/index.html"); got != "c" {
		t.Errorf("after the rollback current serves %q", got)
	}
}

// When releases/ is a filesystem of its own (a second disk), old releases are still removed:
// they are renamed within releases/ and deleted there, never moved across filesystems.
func TestFaultReleasesOnItsOwnFilesystem(t *testing.T) {
	s := newSite(t, "keep_releases: 2\n")
	os.MkdirAll(filepath.Join(s.root, "releases"), 0o755)
	mountOrSkip(t, "tmpfs", filepath.Join(s.root, "releases"), "tmpfs", 0, "size=8m")
	var ids []string
	for i := range 5 {
		s.write("public/index.html", fmt.Sprint(i))
		ids = append(ids, s.mustDeploy())
	}
	waitFor(t, "old releases deleted", func() bool { return len(s.releaseDirs()) == 2 })
	if diff := cmp.Diff(ids[3:], s.releaseDirs()); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if len(s.rep.warnings) > 0 {
		t.Errorf("warnings: %q", s.rep.warnings)
	}
	// Nor does ferry check blame the swap: current and its temporary links are both in the root.
	findings, err := Check(context.Background(), s.cfg, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if f.Severity == check.Error {
			t.Errorf("ferry check with releases/ on its own filesystem: %v", f)
		}
	}
}
