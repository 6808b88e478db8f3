package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// IDLayout is the UTC timestamp format of release ids.
const IDLayout = "20060102-150405"

// NewID returns the id for a release prepared at now: its UTC second, suffixed -2, -3, … when
// the log or releases/ of any of the given hosts' states already has that second. Ids are never
// reused, even when the clock goes back: order comes from the log, so an id that sorts lower is
// still newer.
func NewID(now time.Time, states ...*State) string {
	taken := map[string]bool{}
	for _, st := range states {
		for _, rel := range st.Releases {
			taken[rel.ID] = true
		}
		for _, id := range st.Unknown {
			taken[id] = true
		}
	}
	base := now.UTC().Format(IDLayout)
	id := base
	for n := 2; taken[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}

// ParseID checks that id has the form of a release id and returns the time it names.
func ParseID(id string) (time.Time, error) {
	base, suffix, hasSuffix := strings.Cut(id[min(len(id), len(IDLayout)):], "-")
	if len(id) < len(IDLayout) || base != "" {
		return time.Time{}, fmt.Errorf("%q is not a release id (want YYYYMMDD-HHMMSS[-N])", id)
	}
	t, err := time.Parse(IDLayout, id[:len(IDLayout)])
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a release id (want YYYYMMDD-HHMMSS[-N])", id)
	}
	if hasSuffix {
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 2 || strconv.Itoa(n) != suffix {
			return time.Time{}, fmt.Errorf("%q is not a release id (suffix must be a number from 2)", id)
		}
	}
	return t, nil
}

// Begin records release id in the log and creates its directory. The log comes first, so a
// directory ferry created is always known to the log, and a crash leaves it marked incomplete.
func (r *Root) Begin(id, message, user string) error {
	if err := r.appendEvent(Event{Type: EventPrepare, Release: id, Message: message, User: user}); err != nil {
		return err
	}
	if err := r.Host.Mkdir(r.ReleaseDir(id)); err != nil {
		return fmt.Errorf("create release %s: %w", id, err)
	}
	return nil
}

// SharedPath is a path of shared/ linked into every release.
type SharedPath struct {
	Path  string // relative, cleaned, inside the release
	IsDir bool
}

// LinkShared replaces each shared path of release id with a symlink into shared/. On first use
// the shared path is seeded from the release when the build has it, else created empty; from
// then on the shared copy wins and the build's copy is removed from the release with a warning.
// Nothing in shared/ is ever removed or overwritten.
func (r *Root) LinkShared(id string, paths []SharedPath, warn func(string)) error {
	for _, sp := range paths {
		if err := r.linkShared(id, sp, warn); err != nil {
			return fmt.Errorf("link shared %s %q: %w", kind(sp.IsDir), sp.Path, err)
		}
	}
	return nil
}

// SharedExisting returns the shared paths that already exist in shared/.
func (r *Root) SharedExisting(paths []SharedPath) ([]string, error) {
	var out []string
	for _, sp := range paths {
		_, err := r.Host.Lstat(r.sharedDir() + "/" + sp.Path)
		if err == nil {
			out = append(out, sp.Path)
		} else if !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
			return nil, err
		}
	}
	return out, nil
}

// SharedHashes returns the SHA-256 of each shared file as it is in shared/ now, so that a change
// of the environment between two activations can be told. Contents are never returned or logged.
func (r *Root) SharedHashes(files []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range files {
		data, err := r.Host.ReadFile(r.sharedDir() + "/" + f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read shared %s: %w", f, err)
		}
		sum := sha256.Sum256(data)
		out[f] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

// ChangedShared lists the files whose hash differs between two activations. Nothing has changed
// when there is no earlier record.
func ChangedShared(before, now map[string]string) []string {
	if before == nil {
		return nil
	}
	var out []string
	for f, h := range now {
		if before[f] != h {
			out = append(out, f)
		}
	}
	for f := range before {
		if _, ok := now[f]; !ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func kind(isDir bool) string {
	if isDir {
		return "dir"
	}
	return "file"
}

func (r *Root) linkShared(id string, sp SharedPath, warn func(string)) error {
	shared := r.sharedDir() + "/" + sp.Path
	inRelease := r.ReleaseDir(id) + "/" + sp.Path
	sfi, err := r.Host.Lstat(shared)
	sharedExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rfi, err := r.Host.Lstat(inRelease)
	inBuild := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) && !isNotDir(err) {
		return err
	}
	switch {
	case sharedExists:
		if sfi.IsDir() != sp.IsDir {
			return fmt.Errorf("shared/%s is a %s, but ferry.yaml lists it under shared.%ss", sp.Path, kind(sfi.IsDir()), kind(sp.IsDir))
		}
		if inBuild {
			if err := r.Host.RemoveAll(inRelease); err != nil {
				return err
			}
			warn(fmt.Sprintf("the build ships %s, but shared/%s exists and wins; remove it from the build", sp.Path, sp.Path))
		}
	case inBuild:
		if rfi.IsDir() != sp.IsDir || rfi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("the build has %s as a %s, but ferry.yaml lists it under shared.%ss", sp.Path, describeMode(rfi.Mode()), kind(sp.IsDir))
		}
		if err := r.Host.MkdirAll(path.Dir(shared)); err != nil {
			return err
		}
		if err := r.Host.Rename(inRelease, shared); err != nil {
			return err
		}
		warn(fmt.Sprintf("seeded shared/%s from the build; from now on the shared copy is kept", sp.Path))
	default:
		if err := r.Host.MkdirAll(path.Dir(shared)); err != nil {
			return err
		}
		if sp.IsDir {
			err = r.Host.Mkdir(shared)
		} else {
			err = r.Host.CreateExclusive(shared, nil)
		}
		if err != nil {
			return err
		}
	}
	if err := r.Host.MkdirAll(path.Dir(inRelease)); err != nil {
		return err
	}
	// A relative link: from releases/<id>/<dir of path> up to <root>, then down into shared/.
	target := strings.Repeat("../", strings.Count(sp.Path, "/")+2) + "shared/" + sp.Path
	return r.Host.Symlink(target, inRelease)
}

func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

// Hook is a command run in a release directory.
type Hook struct {
	Script  string
	Timeout time.Duration
}

// HookError carries a failed hook's output.
type HookError struct {
	Script string
	Output string
	Err    error
}

func (e *HookError) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("hook %q: %v", e.Script, e.Err)
	}
	return fmt.Sprintf("hook %q: %v; its output:\n%s", e.Script, e.Err, out)
}

func (e *HookError) Unwrap() error { return e.Err }

// RunHook runs hook in release id with env, streaming its output to out and keeping the tail of
// it for the error.
func (r *Root) RunHook(ctx context.Context, id string, hook Hook, env []string, out func([]byte)) error {
	tail := &tailBuffer{max: 16 << 10, forward: out}
	err := r.Host.Run(ctx, host.Command{Script: hook.Script, Dir: r.ReleaseDir(id), Env: env, Stdout: tail, Stderr: tail, Timeout: hook.Timeout})
	if err != nil {
		return &HookError{Script: hook.Script, Output: tail.String(), Err: err}
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it and forwards every write.
type tailBuffer struct {
	max     int
	buf     []byte
	forward func([]byte)
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	if t.forward != nil {
		t.forward(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// Env is the FERRY_* environment of hooks and services for release id.
func (r *Root) Env(id, previous, hostName string) []string {
	return []string{
		"FERRY_RELEASE=" + id,
		"FERRY_RELEASE_DIR=" + r.ReleaseDir(id),
		"FERRY_PREVIOUS_RELEASE=" + previous,
		"FERRY_ROOT=" + r.Dir,
		"FERRY_SHARED_DIR=" + r.sharedDir(),
		"FERRY_HOST=" + hostName,
	}
}

// Complete stores the release's manifest, makes the release durable, and records it complete.
// Only a complete release can be activated.
func (r *Root) Complete(id string, manifest []byte) error {
	if err := r.Host.WriteFile(r.manifestPath(id), manifest); err != nil {
		return fmt.Errorf("write manifest of %s: %w", id, err)
	}
	if err := r.Host.Sync(r.ReleaseDir(id)); err != nil {
		return err
	}
	return r.appendEvent(Event{Type: EventComplete, Release: id})
}

// Manifest returns the stored manifest of release id.
func (r *Root) Manifest(id string) ([]byte, error) {
	return r.Host.ReadFile(r.manifestPath(id))
}

// Fail records that preparing release id failed and removes it, unless keep is set.
func (r *Root) Fail(id string, cause error, keep bool) error {
	if err := r.appendEvent(Event{Type: EventFailed, Release: id, Error: cause.Error()}); err != nil {
		return err
	}
	if keep {
		return nil
	}
	return r.remove(id, "failed")
}

// Swap is a prepared change of current: the temporary link exists; Commit renames it over
// current. Splitting the two lets a fleet create its links first and then rename them all at
// once, so the hosts switch within a round trip of each other.
type Swap struct {
	root *Root
	tmp  string
	ev   Event
}

// PrepareActivate prepares pointing current at release id. shared holds the hashes of the shared
// files at this activation.
func (r *Root) PrepareActivate(id string, shared map[string]string) (*Swap, error) {
	return r.prepareSwap(Event{Type: EventActivate, Release: id, Shared: shared})
}

// PrepareRollback prepares pointing current at target; the release it leaves, from, is marked
// bad so that the next rollback goes further back.
func (r *Root) PrepareRollback(target, from string, shared map[string]string) (*Swap, error) {
	return r.prepareSwap(Event{Type: EventRollback, Release: target, From: from, Shared: shared})
}

// Activate points current at release id: a new symlink current.<random> is created and renamed
// over current, so current is never missing and never half-written.
func (r *Root) Activate(id string, shared map[string]string) error {
	s, err := r.PrepareActivate(id, shared)
	if err != nil {
		return err
	}
	return s.Commit()
}

// RollbackTo points current at target and marks from bad.
func (r *Root) RollbackTo(target, from string, shared map[string]string) error {
	s, err := r.PrepareRollback(target, from, shared)
	if err != nil {
		return err
	}
	return s.Commit()
}

func (r *Root) prepareSwap(ev Event) (*Swap, error) {
	tmp := r.currentPath() + "." + randomSuffix()
	if err := r.Host.Symlink("releases/"+ev.Release, tmp); err != nil {
		return nil, fmt.Errorf("swap current: %w", err)
	}
	return &Swap{root: r, tmp: tmp, ev: ev}, nil
}

// Abort removes the temporary link of a swap that will not be committed.
func (s *Swap) Abort() { _ = s.root.Host.Remove(s.tmp) }

// Commit renames the link over current, makes it durable and logs it.
func (s *Swap) Commit() error {
	if err := s.Rename(); err != nil {
		return err
	}
	return s.Finish()
}

// Rename is the swap itself: one rename(2) of the prepared link over current.
func (s *Swap) Rename() error {
	r := s.root
	if err := r.Host.Rename(s.tmp, r.currentPath()); err != nil {
		s.Abort()
		return fmt.Errorf("swap current: %w", err)
	}
	s.ev.Time = time.Now().UTC() // the instant of the swap, before it is made durable
	return nil
}

// Finish makes a renamed swap durable and logs it.
func (s *Swap) Finish() error {
	r := s.root
	if err := r.Host.Sync(r.currentPath()); err != nil {
		return fmt.Errorf("swap current: %w", err)
	}
	return r.appendEvent(s.ev)
}

// Removable lists the releases that cleanup removes, newest first: every incomplete or failed
// release (except preparing, the one this run is building), and complete releases beyond the
// newest keep. The current release and the rollback target are always kept and count toward
// keep. Order is the log's, never mtimes.
func (st *State) Removable(keep int, preparing string) []string {
	protect := map[string]bool{st.Current: true, preparing: true}
	if target, err := st.RollbackTarget(); err == nil {
		protect[target.ID] = true
	}
	var out []string
	kept := 0
	for i := len(st.Releases) - 1; i >= 0; i-- {
		rel := st.Releases[i]
		if !rel.Exists || protect[rel.ID] {
			if rel.Live() {
				kept++
			}
			continue
		}
		if rel.Status == StatusComplete && kept < keep {
			kept++
			continue
		}
		out = append(out, rel.ID)
	}
	return out
}

// Cleanup removes what Removable lists and returns the ids removed.
func (r *Root) Cleanup(keep int, preparing string) ([]string, error) {
	st, err := r.State()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, id := range st.Removable(keep, preparing) {
		if err := r.remove(id, "cleanup"); err != nil {
			return removed, err
		}
		removed = append(removed, id)
	}
	return removed, nil
}
