// Package release is the layout engine: on one host it allocates release ids, prepares release
// directories, links shared paths, swaps current atomically, rolls back, cleans up, and keeps the
// lock, the log and the manifests under <root>/.ferry. It works through host.Host only and knows
// nothing of SSH, config files or the CLI. Every invariant of DESIGN §2 lives here.
package release

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Root is one deploy root on one host.
type Root struct {
	Host host.Host
	Dir  string // absolute path of <root> on the host

	logTailChecked bool // this run has appended to the log, so it ends with a newline
}

// New returns the root at dir on h.
func New(h host.Host, dir string) *Root {
	return &Root{Host: h, Dir: path.Clean(dir)}
}

// Paths of the layout (DESIGN §1).
func (r *Root) releasesDir() string           { return r.Dir + "/releases" }
func (r *Root) sharedDir() string             { return r.Dir + "/shared" }
func (r *Root) stateDir() string              { return r.Dir + "/.ferry" }
func (r *Root) currentPath() string           { return r.Dir + "/current" }
func (r *Root) lockPath() string              { return r.stateDir() + "/lock" }
func (r *Root) logPath() string               { return r.stateDir() + "/log.jsonl" }
func (r *Root) trashDir() string              { return r.stateDir() + "/trash" }
func (r *Root) manifestDir() string           { return r.stateDir() + "/manifests" }
func (r *Root) manifestPath(id string) string { return r.manifestDir() + "/" + id + ".json" }

// ReleaseDir is the absolute path of release id.
func (r *Root) ReleaseDir(id string) string { return r.releasesDir() + "/" + id }

// ReleasesDir is the absolute path of <root>/releases.
func (r *Root) ReleasesDir() string { return r.releasesDir() }

// SharedDir is the absolute path of <root>/shared.
func (r *Root) SharedDir() string { return r.sharedDir() }

// EnsureLayout creates the directories of the layout that are missing. It never removes or
// changes anything, so it is safe before the lock is held.
func (r *Root) EnsureLayout() error {
	for _, d := range []string{r.Dir, r.releasesDir(), r.sharedDir(), r.stateDir(), r.manifestDir(), r.trashDir()} {
		if err := r.Host.MkdirAll(d); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return r.checkCurrent()
}

// checkCurrent refuses a current that is not a symlink: rename(2) cannot replace a directory.
func (r *Root) checkCurrent() error {
	fi, err := r.Host.Lstat(r.currentPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return &HintError{
			Err:  fmt.Errorf("%s is a %s, not a symlink", r.currentPath(), describeMode(fi.Mode())),
			Hint: fmt.Sprintf("move it aside (mv %s %s.old) so ferry can manage current", r.currentPath(), r.currentPath()),
		}
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	if m.IsDir() {
		return "directory"
	}
	return "file"
}

// HintError is an error with a command or step that fixes it.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// Recover removes what a killed run left behind: temporary current.* links, the trash, and
// releases that were never completed. It must be called with the lock held.
func (r *Root) Recover(warn func(string)) error {
	entries, err := r.Host.ReadDir(r.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "current.") && e.Type()&fs.ModeSymlink != 0 {
			if err := r.Host.Remove(r.Dir + "/" + e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			warn(fmt.Sprintf("removed temporary link %s left by an interrupted swap", e.Name()))
		}
	}
	for _, dir := range []string{r.stateDir(), r.manifestDir()} {
		entries, err := r.Host.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			n := e.Name()
			if !strings.Contains(n, ".tmp-") && !strings.Contains(n, ".new-") && !strings.Contains(n, ".stale-") {
				continue
			}
			// A run waiting for the lock writes lock.new-* and lock.stale-* while we hold it:
			// only old ones are leftovers of a killed run.
			if fi, err := e.Info(); err == nil && strings.HasPrefix(n, "lock.") && time.Since(fi.ModTime()) < 10*time.Minute {
				continue
			}
			_ = r.Host.Remove(dir + "/" + n)
		}
	}
	if err := r.emptyTrash(); err != nil {
		return err
	}
	st, err := r.State()
	if err != nil {
		return err
	}
	for _, rel := range st.Releases {
		if rel.Status == StatusPreparing && rel.Exists {
			if err := r.remove(rel.ID, "incomplete"); err != nil {
				return err
			}
			warn(fmt.Sprintf("removed incomplete release %s left by an interrupted deploy", rel.ID))
		}
	}
	return nil
}

func (r *Root) emptyTrash() error {
	entries, err := r.Host.ReadDir(r.trashDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := r.Host.RemoveAll(r.trashDir() + "/" + e.Name()); err != nil {
			return fmt.Errorf("empty %s: %w", r.trashDir(), err)
		}
	}
	return nil
}

// remove takes release id out of releases/ with one rename, so that no half-deleted release is
// ever visible under releases/, logs it, and then deletes it from the trash.
func (r *Root) remove(id, reason string) error {
	trash := r.trashDir() + "/" + id + "." + randomSuffix()
	if err := r.Host.Rename(r.ReleaseDir(id), trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove release %s: %w", id, err)
	}
	if err := r.appendEvent(Event{Type: EventRemoved, Release: id, Message: reason}); err != nil {
		return err
	}
	_ = r.Host.Remove(r.manifestPath(id))
	if err := r.Host.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove release %s: %w", id, err)
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
