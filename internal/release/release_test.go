package release

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/host/local"
)

func newRoot(t *testing.T) *Root {
	t.Helper()
	r := New(local.New(), filepath.Join(t.TempDir(), "srv"))
	if _, err := r.Probe(context.Background(), ProbeOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	return r
}

// prepare makes a complete release holding index.html with content, in one Prepare request.
func prepare(t *testing.T, r *Root, id, content string) {
	t.Helper()
	u, stream := upload(id, content, nil)
	p, err := r.Prepare(context.Background(), u, stream)
	if err != nil {
		t.Fatal(err)
	}
	p.Swap.Abort(context.Background())
}

// upload is a complete release id holding index.html with content, and its stream, under lease.
func upload(id, content string, lease *Lease) (*Upload, *bytes.Buffer) {
	manifest := []byte(`{"path":"index.html","type":"file"}` + "\n")
	var stream bytes.Buffer
	tw := tar.NewWriter(&stream)
	for name, data := range map[string][]byte{"index.html": []byte(content), ".m": manifest} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	sum := sha256.Sum256(manifest)
	return &Upload{ID: id, User: "test", ManifestFull: ".m", ManifestSum: hex.EncodeToString(sum[:]), Complete: true, Lease: lease}, &stream
}

// readLog returns the events of the root's log.
func readLog(t *testing.T, r *Root) []Event {
	data, err := os.ReadFile(r.logPath())
	if err != nil {
		t.Fatal(err)
	}
	return parseLog(data)
}

// lock takes r's lock, failing the test on error, and returns its release.
func lock(t *testing.T, r *Root, me Holder, wait time.Duration, warn func(string)) (func() error, error) {
	_, lease, err := r.Lock(context.Background(), me, wait, ProbeOptions{}, warn)
	if err != nil {
		return nil, err
	}
	return func() error { return lease.Release(context.Background()) }, nil
}

func TestSwapNeverExposesAMissingCurrent(t *testing.T) {
	r := newRoot(t)
	prepare(t, r, "20260101-000000", "a")
	prepare(t, r, "20260101-000001", "b")
	if err := r.Activate(context.Background(), "20260101-000000", nil); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	page := filepath.Join(r.Dir, "current", "index.html")
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				b, err := os.ReadFile(page)
				reads.Add(1)
				if err != nil || (string(b) != "a" && string(b) != "b") {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("read %q, %v", b, err))
				}
			}
		})
	}
	for i := range 200 {
		id := "20260101-00000" + fmt.Sprint(1-i%2)
		if err := r.Activate(context.Background(), id, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d reads through current failed during 200 swaps; first: %v", failures.Load(), reads.Load(), firstErr.Load())
	}
	if reads.Load() < 1000 {
		t.Fatalf("only %d reads happened during the swaps; the test proves nothing", reads.Load())
	}
	entries, _ := os.ReadDir(r.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "current.") {
			t.Errorf("temporary link %s left behind", e.Name())
		}
	}
}

func TestNewIDIsUniqueWithinASecondAndWhenTheClockGoesBack(t *testing.T) {
	r := newRoot(t)
	now := time.Date(2026, 11, 27, 10, 15, 2, 0, time.UTC)
	var got []string
	for _, at := range []time.Time{now, now, now, now, now, now.Add(-time.Hour), now} {
		st, err := r.State()
		if err != nil {
			t.Fatal(err)
		}
		id := NewID(at, st)
		prepare(t, r, id, id)
		got = append(got, id)
	}
	want := []string{"20261127-101502", "20261127-101502-2", "20261127-101502-3", "20261127-101502-4",
		"20261127-101502-5", "20261127-091502", "20261127-101502-6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ids (-want +got):\n%s", diff)
	}
	// Order is the log's: the release made when the clock was an hour behind is still the
	// sixth, and the rollback target of the seventh.
	if err := r.Activate(context.Background(), got[6], nil); err != nil {
		t.Fatal(err)
	}
	st, _ := r.State()
	if target, err := st.RollbackTarget(); err != nil || target.ID != "20261127-091502" {
		t.Fatalf("rollback target = %v, %v; want the release prepared before current", target, err)
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"20261127-101502", true},
		{"20261127-101502-2", true},
		{"20261127-101502-12", true},
		{"20261127-101502-1", false},
		{"20261127-101502-02", false},
		{"20261127-101502-x", false},
		{"20261127-1015", false},
		{"20261327-101502", false},
		{"../../etc", false},
		{"", false},
		{"20261127-101502/..", false},
	} {
		_, err := ParseID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ParseID(%q) err = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestLockIsExclusiveAndNamesItsHolder(t *testing.T) {
	r := newRoot(t)
	me := CurrentHolder("ferry deploy")
	unlock, err := lock(t, r, me, 0, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock(t, r, CurrentHolder("ferry rollback"), 0, logf(t))
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: err = %v, want LockedError", err)
	}
	if le.Holder == nil || le.Holder.Command != "ferry deploy" || le.Holder.PID != os.Getpid() {
		t.Fatalf("holder = %+v", le.Holder)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = lock(t, r, me, 0, logf(t))
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock()
}

func TestLockWaitQueuesBehindTheHolder(t *testing.T) {
	r := newRoot(t)
	unlock, err := lock(t, r, CurrentHolder("first"), 0, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := lock(t, r, CurrentHolder("second"), time.Minute, logf(t))
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second lock returned while the first is held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("second lock after waiting: %v", err)
	}
}

func TestStaleLockOfADeadProcessIsTakenOver(t *testing.T) {
	r := newRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := CurrentHolder("ferry deploy")
	stale.PID = dead.Process.Pid
	if _, err := lock(t, r, stale, 0, logf(t)); err != nil {
		t.Fatal(err)
	}
	var warned []string
	unlock, err := lock(t, r, CurrentHolder("ferry deploy"), 0, func(s string) { warned = append(warned, s) })
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	defer unlock()
	if len(warned) != 1 || !strings.Contains(warned[0], "stale lock") {
		t.Fatalf("warnings = %v", warned)
	}

	// A lock from another machine is never presumed dead.
	other := CurrentHolder("ferry deploy")
	other.Host = "elsewhere"
	other.PID = dead.Process.Pid
	r2 := newRoot(t)
	if _, err := lock(t, r2, other, 0, logf(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := lock(t, r2, CurrentHolder("x"), 0, logf(t)); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock held from another host was taken: %v", err)
	}
}

func TestConcurrentLockersExactlyOneWins(t *testing.T) {
	r := newRoot(t)
	var wins atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			<-start
			if _, err := lock(t, r, CurrentHolder(fmt.Sprint("run ", i)), 0, logf(t)); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrLocked) {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d runs took the lock at once", wins.Load())
	}
}

func TestTornLogLineIsSkippedAndNextEventStartsANewLine(t *testing.T) {
	r := newRoot(t)
	prepare(t, r, "20260101-000000", "a")
	f, _ := os.OpenFile(r.logPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-01-01T00:00:00Z","event":"comp`)
	f.Close()
	r = New(r.Host, r.Dir) // the next run, after the crash
	prepare(t, r, "20260101-000001", "b")
	events := readLog(t, r)
	if len(events) != 4 || events[2].Type != EventPrepare {
		t.Fatalf("the event after the torn line was lost: %+v", events)
	}
	st, err := r.State()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Releases) != 2 || !st.Releases[0].Live() || !st.Releases[1].Live() {
		t.Fatalf("releases = %+v %+v", st.Releases[0], st.Releases[1])
	}
}

func TestReleaseOfLink(t *testing.T) {
	for target, want := range map[string]string{
		"releases/20260101-000000":          "20260101-000000",
		"/srv/releases/20260101-000000":     "20260101-000000",
		"/srv/releases/20260101-000000/":    "20260101-000000",
		"/elsewhere/releases2/x":            "",
		"../other/releases/20260101-000000": "",
	} {
		if got := releaseOfLink(target, "/srv/releases"); got != want {
			t.Errorf("releaseOfLink(%q) = %q, want %q", target, got, want)
		}
	}
}

func logf(t *testing.T) func(string) { return func(s string) { t.Log(s) } }

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"20261127-101502", "20261127-101502-2", "2026112-101502", "../x", "20261127-101502-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		when, err := ParseID(id)
		if err != nil {
			return
		}
		// An accepted id is safe as a path element and round-trips through its time.
		if strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." {
			t.Fatalf("accepted unsafe id %q", id)
		}
		if !strings.HasPrefix(id, when.Format(IDLayout)) {
			t.Fatalf("ParseID(%q) = %v", id, when)
		}
	})
}

// A probe cancelled after it took the lock (Ctrl-C, a lost connection) gives the lock back: no
// run is left locked out by a lock nobody holds.
func TestCancelledLockLeavesNoLock(t *testing.T) {
	r := newRoot(t)
	prepare(t, r, "20260101-000000", "x")
	me := CurrentHolder("deploy")
	for d := 500 * time.Microsecond; d < 30*time.Millisecond; d += 500 * time.Microsecond {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, lease, err := r.Lock(ctx, me, 0, ProbeOptions{Live: true}, logf(t))
		cancel()
		if err == nil {
			lease.Release(context.Background())
		}
		if _, err := os.Stat(filepath.Join(r.Dir, ".ferry/lock")); err == nil {
			t.Fatalf("a Lock cancelled after %v left the lock behind", d)
		}
	}
}

// renameFails is a host whose rename(2) fails, as on a disk that turned read-only between the
// link and the swap: a fault that cannot be made on demand on a real filesystem.
type renameFails struct{ host.Host }

func (renameFails) Rename(context.Context, string, string) error {
	return &os.LinkError{Op: "rename", Err: syscall.EIO}
}

// The request that logs a swap is sent with the rename, and waits for it: when the rename
// fails, current stays, nothing is logged and the temporary link goes.
func TestFailedRenameLogsNothingAndLeavesNoLink(t *testing.T) {
	r := newRoot(t)
	prepare(t, r, "20260101-000000", "a")
	prepare(t, r, "20260101-000001", "b")
	if err := r.Activate(context.Background(), "20260101-000000", nil); err != nil {
		t.Fatal(err)
	}
	before := len(readLog(t, r))
	broken := New(renameFails{r.Host}, r.Dir)
	err := broken.Activate(context.Background(), "20260101-000001", nil)
	if err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("activate with a failing rename: %v; want the rename's error", err)
	}
	if got, _ := os.Readlink(filepath.Join(r.Dir, "current")); got != "releases/20260101-000000" {
		t.Errorf("current -> %s; want it unchanged", got)
	}
	if evs := readLog(t, r); len(evs) != before {
		t.Errorf("the log gained %+v", evs[before:])
	}
	entries, _ := os.ReadDir(r.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "current.") {
			t.Errorf("temporary link %s left behind", e.Name())
		}
	}
}

// A lock is taken over only when its holder is proven gone: it ran on this machine, in this boot
// and pid namespace, and its pid is free or now another process's. The same host name proves
// nothing (CI runners, containers and laptops share names), and neither does a lock that does
// not say where it ran.
func TestLockIsTakenOverOnlyFromAProvablyGoneHolder(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	me := CurrentHolder("ferry deploy")
	if me.Machine == "" || me.Boot == "" || me.PIDNS == "" || me.Start == 0 {
		t.Fatalf("this Linux machine gave no identity: %+v", me)
	}
	gone := func(change func(*Holder)) Holder {
		h := me
		h.PID = dead.Process.Pid
		change(&h)
		return h
	}
	for _, tc := range []struct {
		name  string
		h     Holder
		taken bool
	}{
		{"exited here", gone(func(*Holder) {}), true},
		{"pid reused by a later process", func() Holder { h := me; h.Start--; return h }(), true},
		{"another machine with the same host name", gone(func(h *Holder) { h.Machine = "0123456789abcdef0123456789abcdef" }), false},
		{"another pid namespace", gone(func(h *Holder) { h.PIDNS = "pid:[1]" }), false},
		{"before a reboot", gone(func(h *Holder) { h.Boot = "00000000-0000-0000-0000-000000000000" }), false},
		{"an older ferry that did not say", gone(func(h *Holder) { h.Machine, h.Boot, h.PIDNS, h.Start = "", "", "", 0 }), false},
		{"alive here", me, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			if _, err := lock(t, r, tc.h, 0, logf(t)); err != nil {
				t.Fatal(err)
			}
			var warned []string
			unlock, err := lock(t, r, CurrentHolder("ferry deploy"), 0, func(s string) { warned = append(warned, s) })
			if tc.taken {
				if err != nil {
					t.Fatalf("lock of a holder that is gone not taken over: %v", err)
				}
				unlock()
				if len(warned) != 1 || !strings.Contains(warned[0], "stale lock") {
					t.Errorf("warnings = %v", warned)
				}
				return
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("lock of a holder that may be alive was taken: %v (warnings %v)", err, warned)
			}
		})
	}
}

// The case the review found: a run in another pid namespace (a container sharing the host's name
// and network) holds the lock with a pid that is free here. It must not be presumed dead.
func TestLockHeldFromAnotherPIDNamespaceIsNotTakenOver(t *testing.T) {
	out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "readlink", "/proc/self/ns/pid").Output()
	if err != nil {
		if os.Getenv("FERRY_TEST_DISALLOW_SKIP") != "" {
			t.Fatalf("unshare --pid: %v", err)
		}
		t.Skipf("cannot make a pid namespace here: %v", err)
	}
	ns := strings.TrimSpace(string(out))
	if me, _ := os.Readlink("/proc/self/ns/pid"); ns == me {
		t.Fatalf("unshare --pid gave this namespace, %s", ns)
	}
	// Its pid is one that is free here.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	h := CurrentHolder("ferry deploy")
	h.PIDNS, h.PID = ns, dead.Process.Pid
	r := newRoot(t)
	if _, err := lock(t, r, h, 0, logf(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := lock(t, r, CurrentHolder("ferry deploy"), 0, logf(t)); !errors.Is(err, ErrLocked) {
		t.Fatalf("the lock of a run in pid namespace %s was taken over: %v", ns, err)
	}
	// Nor does 'ferry unlock' remove it without --force: whether it is alive cannot be seen.
	if _, err := r.Unlock(context.Background(), false); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another pid namespace") {
		t.Fatalf("unlock of a run in another pid namespace: %v; want it refused", err)
	}
	if _, err := r.Unlock(context.Background(), true); err != nil {
		t.Fatalf("unlock --force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".ferry", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the lock is still there after unlock --force: %v", err)
	}
}

// 'ferry unlock' keeps the lock of a run still alive on this machine unless forced.
func TestUnlockKeepsTheLockOfALiveRunUnlessForced(t *testing.T) {
	r := newRoot(t)
	me := CurrentHolder("ferry deploy")
	if _, err := lock(t, r, me, 0, logf(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Unlock(context.Background(), false); !errors.Is(err, ErrLocked) {
		t.Fatalf("unlock of a live run: %v; want it refused", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".ferry", "lock")); err != nil {
		t.Fatalf("the lock is gone after a refused unlock: %v", err)
	}
	h, err := r.Unlock(context.Background(), true)
	if err != nil || h == nil || h.PID != me.PID {
		t.Fatalf("unlock --force: %v, %v", h, err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".ferry", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the lock is still there after unlock --force: %v", err)
	}
}

// renameLate is a host whose rename(2) is made, but only after delay (a stalled connection).
type renameLate struct {
	host.Host
	delay time.Duration
}

func (h renameLate) Rename(ctx context.Context, oldpath, newpath string) error {
	time.Sleep(h.delay)
	return h.Host.Rename(ctx, oldpath, newpath)
}

// renameReplyLost is a host whose rename(2) is made but whose reply is lost.
type renameReplyLost struct{ host.Host }

func (h renameReplyLost) Rename(ctx context.Context, oldpath, newpath string) error {
	if err := h.Host.Rename(ctx, oldpath, newpath); err != nil {
		return err
	}
	return errors.New("connection lost")
}

// A swap is logged exactly when current was renamed: a rename made later than the finish
// script waits for it, or whose reply was lost, is still logged once, and reported as made.
func TestSwapIsLoggedOnceWhenRenamedLateOrItsReplyLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		host func(h host.Host) host.Host
	}{
		{"renamed after the wait", func(h host.Host) host.Host { return renameLate{h, 2500 * time.Millisecond} }},
		{"reply lost", func(h host.Host) host.Host { return renameReplyLost{h} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t)
			prepare(t, r, "20260101-000000", "a")
			prepare(t, r, "20260101-000001", "b")
			if err := r.Activate(context.Background(), "20260101-000000", nil); err != nil {
				t.Fatal(err)
			}
			flaky := &Root{Host: tc.host(r.Host), Dir: r.Dir, renameWait: time.Second}
			sw, err := flaky.PrepareActivate(context.Background(), "20260101-000001", nil)
			if err != nil {
				t.Fatal(err)
			}
			renamed, _, err := sw.Commit(context.Background(), nil)
			if err != nil || !renamed {
				t.Fatalf("Commit = %v, %v; want renamed and no error", renamed, err)
			}
			if got, _ := os.Readlink(filepath.Join(r.Dir, "current")); got != "releases/20260101-000001" {
				t.Errorf("current -> %s", got)
			}
			n := 0
			for _, ev := range readLog(t, r) {
				if ev.Type == EventActivate && ev.Release == "20260101-000001" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the swap is logged %d times, want once", n)
			}
		})
	}
}

// A shared file's hash tells it changed only against a hash made with the same key: one made
// by an older ferry (no key) or with a lost key is no evidence, and restarts nothing.
func TestChangedSharedComparesHashesOfOneKeyOnly(t *testing.T) {
	for _, tc := range []struct {
		name        string
		before, now map[string]string
		want        []string
	}{
		{"same key, same content", map[string]string{".env": "k1:aa"}, map[string]string{".env": "k1:aa"}, nil},
		{"same key, changed", map[string]string{".env": "k1:aa"}, map[string]string{".env": "k1:bb"}, []string{".env"}},
		{"an older ferry's plain hash", map[string]string{".env": "aa"}, map[string]string{".env": "k1:bb"}, nil},
		{"another key", map[string]string{".env": "k0:aa"}, map[string]string{".env": "k1:bb"}, nil},
		{"removed", map[string]string{".env": "k1:aa"}, map[string]string{}, []string{".env"}},
	} {
		if got := ChangedShared(tc.before, tc.now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ChangedShared = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A run whose lock was taken over (its process gone here while its upload still ran on the
// host) stops before it logs its release complete.
func TestUploadStopsWhenItsLockWasTakenOver(t *testing.T) {
	r := newRoot(t)
	_, lease, err := r.Lock(context.Background(), CurrentHolder("ferry deploy"), 0, ProbeOptions{}, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	other := CurrentHolder("ferry deploy")
	other.Host, other.PID = "elsewhere", 1
	data, _ := json.Marshal(other)
	if err := os.WriteFile(filepath.Join(r.Dir, ".ferry", "lock"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	u, stream := upload("20260101-000000", "a", lease)
	if _, err := r.Prepare(context.Background(), u, stream); err == nil || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("prepare under a lock taken over: %v; want it stopped", err)
	}
	// It stops before it logs or makes anything.
	if _, err := os.Stat(filepath.Join(r.Dir, ".ferry", "log.jsonl")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the log was written: %v", err)
	}
	if _, err := os.Stat(r.ReleaseDir(u.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the release directory was made: %v", err)
	}
}

// A run whose lock was taken over may still make its release directory on the host, in the same
// second as the run that took the lock over picks the same id: the latter moves it aside and
// goes on.
func TestUploadReplacesTheDirectoryOfARunItTookOver(t *testing.T) {
	r := newRoot(t)
	_, lease, err := r.Lock(context.Background(), CurrentHolder("ferry deploy"), 0, ProbeOptions{Create: true}, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	id := "20260101-000000"
	if err := os.MkdirAll(filepath.Join(r.ReleaseDir(id), "half"), 0o755); err != nil {
		t.Fatal(err)
	}
	u, stream := upload(id, "a", lease)
	if _, err := r.Prepare(context.Background(), u, stream); err != nil {
		t.Fatalf("prepare over a leftover directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.ReleaseDir(id), "half")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover's content is in the new release: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(r.ReleaseDir(id), "index.html")); err != nil || string(b) != "a" {
		t.Errorf("index.html = %q, %v", b, err)
	}
}

// A socket service's process that answered before the swap and died since fails the swap: the
// stable link keeps pointing at the live process, never at a dead one or at nothing.
func TestSwapFailsWhenTheNewProcessDiedAfterItAnswered(t *testing.T) {
	r := newRoot(t)
	r.Sockets = []Socket{{Name: "app", Signal: "TERM", Drain: time.Second}}
	prepare(t, r, "20260101-000000", "a")
	prepare(t, r, "20260101-000001", "b")
	os.MkdirAll(filepath.Join(r.Dir, "run"), 0o755)
	os.MkdirAll(filepath.Join(r.Dir, ".ferry", "proc"), 0o700)
	// The live release's socket, and the new release's process: gone (pid 1 never started at 1).
	os.Symlink("run/app.20260101-000000.sock", filepath.Join(r.Dir, "app.sock"))
	os.WriteFile(filepath.Join(r.Dir, ".ferry", "proc", "app.20260101-000001"), []byte("1 1 run/app.20260101-000001.sock\n"), 0o600)
	err := r.Activate(context.Background(), "20260101-000001", nil)
	if err == nil || !strings.Contains(err.Error(), "exited after it answered") {
		t.Fatalf("swap to a release whose process died: %v", err)
	}
	if link, _ := os.Readlink(filepath.Join(r.Dir, "app.sock")); link != "run/app.20260101-000000.sock" {
		t.Fatalf("app.sock -> %q, want the live release's socket", link)
	}
}

// A process record naming pid 1 (or 0, or not a number) is never a process of ferry's: a stop
// would be kill -TERM -1, every process there is.
func TestAliveNeverCountsPIDOne(t *testing.T) {
	for _, pid := range []string{"1", "0", "01", "00", "-1", "1x", ""} {
		out, _ := exec.Command("sh", "-c", procFunctions+"\n"+`alive "$1" "$(sed 's/^.*) //' /proc/1/stat | cut -d' ' -f20)" && echo alive`, "sh", pid).CombinedOutput()
		if strings.Contains(string(out), "alive") {
			t.Errorf("alive %q counts as a process of ferry's: a stop would signal every process", pid)
		}
	}
	// And the check itself works: a process group of the test's own is alive.
	sleep := exec.Command("sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	pid := strconv.Itoa(sleep.Process.Pid)
	out, _ := exec.Command("sh", "-c", procFunctions+"\n"+`alive "$1" "$(sed 's/^.*) //' /proc/$1/stat | cut -d' ' -f20)" && echo alive`, "sh", pid).CombinedOutput()
	if !strings.Contains(string(out), "alive") {
		t.Errorf("alive %s (a group the test started) = %q, want alive", pid, out)
	}
}

// A run's check that it still holds its lock waits for a lock that a takeover moved aside to
// compare and then put back (a killed run's takeover script goes on after it): the run goes on.
// One that is not put back, or comes back as another run's, stops it.
func TestHeldWaitsForALockATakeoverPutsBack(t *testing.T) {
	r := newRoot(t)
	_, lease, err := r.Lock(context.Background(), CurrentHolder("ferry deploy"), 0, ProbeOptions{}, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(r.Dir, ".ferry", "lock")
	aside := lockPath + ".stale-test"
	held := func() error {
		s := r.newScript()
		lease.heldScript(s)
		_, err := s.run(context.Background())
		return err
	}
	if err := os.Rename(lockPath, aside); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- held() }()
	time.Sleep(300 * time.Millisecond) // the takeover's compare, while held waits
	if err := os.Link(aside, lockPath); err != nil {
		t.Fatal(err)
	}
	os.Remove(aside)
	if err := <-done; err != nil {
		t.Fatalf("a lock put back within the wait: %v", err)
	}
	os.WriteFile(lockPath, []byte(`{"pid":1}`), 0o600)
	if err := held(); err == nil || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("another run's lock: %v, want the run stopped", err)
	}
}

// A run's unlock removes the lock only if it is still its own when it removes it: the lock of a
// run that took it over in the meantime (while a killed run's unlock went on stopping
// processes) stays.
func TestUnlockRemovesOnlyItsOwnLock(t *testing.T) {
	r := newRoot(t)
	_, lease, err := r.Lock(context.Background(), CurrentHolder("ferry deploy"), 0, ProbeOptions{}, logf(t))
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(r.Dir, ".ferry", "lock")
	other := `{"user":"b","host":"elsewhere","pid":2}`
	os.WriteFile(lockPath, []byte(other), 0o600) // taken over since this run checked
	s := r.newScript()
	s.line(removeLockIf(string(lease.data)))
	if _, err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(lockPath); err != nil || string(b) != other {
		t.Fatalf("the other run's lock after this run's removal: %q, %v", b, err)
	}
	os.WriteFile(lockPath, lease.data, 0o600)
	s = r.newScript()
	s.line(removeLockIf(string(lease.data)))
	if _, err := s.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("this run's own lock was not removed: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(r.Dir, ".ferry", "lock.gone-*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
