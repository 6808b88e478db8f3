// Package invariants checks a deploy root against the invariants of DESIGN §2 from the outside,
// by reading the filesystem the way a user would. Tests of every package call it after deploys,
// rollbacks, cleanups, crashes and faults; it must not share code paths with what it checks
// beyond parsing ferry's own log and manifest formats.
package invariants

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/ferry-deploy/ferry/internal/host/local"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// tempLink matches the names of ferry's temporary links (current.<12 hex digits>).
var tempLink = regexp.MustCompile(`^current\.[0-9a-f]{12}$`)

// Options say what state the root is expected to be in.
type Options struct {
	// Settled is set when no ferry run is in progress and the last one ended normally: then no
	// temporary links, incomplete releases or lock may remain.
	Settled bool
	// Shared lists the shared paths; each must be a symlink into shared/ in the current release.
	Shared []string
}

// Check returns every violation found on the local root at dir.
func Check(dir string, opts Options) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	root := release.New(local.New(), dir)
	st, err := root.State()
	if err != nil {
		return []error{fmt.Errorf("read state: %w", err)}
	}

	// 1. current resolves to a complete release that matches its manifest.
	cur := filepath.Join(dir, "current")
	if fi, err := os.Lstat(cur); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			fail("current is not a symlink")
		} else if target, _ := os.Readlink(cur); target != "releases/"+st.Current {
			fail("current -> %q, want a relative link releases/<id>", target)
		} else if rel := st.Find(st.Current); rel == nil || !rel.Live() {
			fail("current -> %s, which is not a complete release (status %v)", st.Current, statusOf(rel))
		} else if err := MatchManifest(dir, st.Current, opts.Shared); err != nil {
			fail("current release %s: %v", st.Current, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		fail("lstat current: %v", err)
	} else {
		for _, rel := range st.Releases {
			if !rel.Activated.IsZero() {
				fail("current is missing although %s was activated", rel.ID)
			}
		}
	}

	// 2, 3. Leftovers of a run are only allowed while one may be in progress or was killed.
	if opts.Settled {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if tempLink.MatchString(e.Name()) {
				fail("temporary link %s left behind", e.Name())
			}
		}
		for _, rel := range st.Incomplete() {
			fail("incomplete release %s left behind", rel.ID)
		}
		if _, err := os.Stat(filepath.Join(dir, ".ferry", "lock")); err == nil {
			fail("lock left behind")
		}
	}

	// Every complete release on disk matches its manifest: none was half-deleted or modified.
	for _, rel := range st.Releases {
		if rel.Live() && rel.ID != st.Current {
			if err := MatchManifest(dir, rel.ID, opts.Shared); err != nil {
				fail("release %s: %v", rel.ID, err)
			}
		}
	}

	// 9. The rollback target, if any, is complete and not bad.
	if st.Current != "" && st.Find(st.Current) != nil {
		if t, err := st.RollbackTarget(); err == nil && (t.Bad || !t.Live()) {
			fail("rollback target %s is bad or incomplete", t.ID)
		}
	}
	return errs
}

func statusOf(rel *release.Release) any {
	if rel == nil {
		return "unknown to the log"
	}
	if !rel.Exists {
		return string(rel.Status) + ", directory missing"
	}
	return rel.Status
}

// MatchManifest compares release id on disk with its stored manifest: every entry present with
// the same type, size, mode and content; shared paths are symlinks into shared/.
func MatchManifest(root, id string, shared []string) error {
	data, err := os.ReadFile(filepath.Join(root, ".ferry", "manifests", id+".json"))
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	m, err := transfer.ParseManifest(data)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "releases", id)
	for _, e := range m.Entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%q: %w", e.Path, err)
		}
		switch e.Type {
		case transfer.TypeDir:
			if !fi.IsDir() {
				return fmt.Errorf("%q is not a directory", e.Path)
			}
		case transfer.TypeSymlink:
			if target, _ := os.Readlink(p); target != e.Target {
				return fmt.Errorf("%q -> %q, manifest says %q", e.Path, target, e.Target)
			}
		case transfer.TypeFile:
			if !fi.Mode().IsRegular() || fi.Size() != e.Size || fi.Mode().Perm() != e.Mode.Perm() {
				return fmt.Errorf("%q: mode %v size %d, manifest says %v %d", e.Path, fi.Mode(), fi.Size(), e.Mode, e.Size)
			}
			if h, err := hashFile(p); err != nil || h != e.Hash {
				return fmt.Errorf("%q: content differs from the manifest (%v)", e.Path, err)
			}
		}
	}
	for _, s := range shared {
		p := filepath.Join(dir, filepath.FromSlash(s))
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("shared %q is not a symlink: %w", s, err)
		}
		resolved := filepath.Clean(filepath.Join(filepath.Dir(p), target))
		if resolved != filepath.Join(root, "shared", filepath.FromSlash(s)) {
			return fmt.Errorf("shared %q -> %q resolves to %s, not into shared/", s, target, resolved)
		}
	}
	return nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Snapshot records the content of every file under dir (for shared/: nothing may ever change
// or vanish there unless the test changed it).
func Snapshot(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			out[rel] = h
		case d.IsDir():
			out[rel+"/"] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			out[rel] = "-> " + t
		}
		return nil
	})
	return out, err
}
