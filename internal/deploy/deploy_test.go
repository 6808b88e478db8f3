package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/release"
)

func TestDeployActivatesNewRelease(t *testing.T) {
	s := newSite(t, "")
	first := s.mustDeploy()
	if got := s.read("current/public/index.html"); got != "hello" {
		t.Fatalf("current/public/index.html = %q", got)
	}
	s.write("public/index.html", "hello again")
	second := s.mustDeploy()
	if first == second {
		t.Fatalf("two deploys got the same id %s", first)
	}
	if s.current() != second {
		t.Fatalf("current = %s, want %s", s.current(), second)
	}
	if got := s.read("current/public/index.html"); got != "hello again" {
		t.Fatalf("after second deploy current/public/index.html = %q", got)
	}
	// The previous release is untouched by the new one, even though unchanged files are shared.
	if got := s.read("releases/" + first + "/public/index.html"); got != "hello" {
		t.Fatalf("first release's index.html = %q", got)
	}
}

func TestIncrementalDeployWritesOnlyChangedFiles(t *testing.T) {
	s := newSite(t, "")
	for i := range 200 {
		s.write(filepath.Join("public", "f", string(rune('a'+i%26))+strings.Repeat("x", i/26)+".txt"), strings.Repeat("data", i))
	}
	first := s.mustDeploy()
	s.write("public/index.html", "changed")
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check()
	st := res.Hosts[0].Stats
	if st.Sent != 1 || st.Reused != st.Files-1 {
		t.Fatalf("incremental deploy sent %d and reused %d of %d files, want 1 sent", st.Sent, st.Reused, st.Files)
	}
	// Unchanged files are hard links to the previous release's inode; the changed one is not.
	same := func(rel string) bool {
		a, _ := os.Stat(filepath.Join(s.root, "releases", first, rel))
		b, _ := os.Stat(filepath.Join(s.root, "releases", res.Release, rel))
		return os.SameFile(a, b)
	}
	if !same("public/app.js") {
		t.Error("unchanged public/app.js was not linked from the previous release")
	}
	if same("public/index.html") {
		t.Error("changed public/index.html shares its inode with the previous release")
	}
}

func TestLargeUploadInParallelStreamsKeepsModes(t *testing.T) {
	s := newSite(t, "")
	for i := range 600 {
		s.write(fmt.Sprintf("public/d%d/f%d.txt", i%7, i), strings.Repeat("x", i))
	}
	s.write("bin/run", "#!/bin/sh\n")
	os.Chmod(filepath.Join(s.src, "bin/run"), 0o755)
	s.write("locked/inside.txt", "ro")
	os.Chmod(filepath.Join(s.src, "locked"), 0o500)
	s.mustDeploy()
	s.write("public/d0/f0.txt", "changed")
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check() // every file's content and mode against the manifest
	if st := res.Hosts[0].Stats; st.Sent != 1 || st.Reused != st.Files-1 {
		t.Fatalf("stats = %+v; warnings: %v", st, s.rep.warnings)
	}
	if fi, _ := os.Stat(filepath.Join(s.root, "current/locked")); fi.Mode().Perm() != 0o500 {
		t.Fatalf("locked/ mode = %v, want 0500", fi.Mode().Perm())
	}
}

func TestReuseNoneCopiesEveryFile(t *testing.T) {
	s := newSite(t, "reuse: none\n")
	s.mustDeploy()
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Hosts[0].Stats; st.Reused != 0 || st.Sent != st.Files {
		t.Fatalf("reuse: none sent %d of %d, reused %d", st.Sent, st.Files, st.Reused)
	}
}

func TestFiveDeploysInOneSecondGetDistinctIDs(t *testing.T) {
	s := newSite(t, "keep_releases: 10\n")
	ids := map[string]bool{}
	for range 5 {
		ids[s.mustDeploy()] = true
	}
	if len(ids) != 5 {
		t.Fatalf("5 deploys got %d distinct ids: %v", len(ids), ids)
	}
	if got := len(s.releaseDirs()); got != 5 {
		t.Fatalf("releases/ holds %d directories, want 5", got)
	}
}

func TestRollbackTwiceGoesFurtherBack(t *testing.T) {
	s := newSite(t, "")
	a := s.mustDeploy()
	b := s.mustDeploy()
	c := s.mustDeploy()
	if r := s.mustRollback(""); r.From != c || r.To != b {
		t.Fatalf("first rollback %s -> %s, want %s -> %s", r.From, r.To, c, b)
	}
	if r := s.mustRollback(""); r.From != b || r.To != a {
		t.Fatalf("second rollback %s -> %s, want %s -> %s (not back to the bad %s)", r.From, r.To, b, a, c)
	}
	if _, err := Rollback(context.Background(), s.cfg, "", s.opts, s.rep); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("third rollback: err = %v, want nothing to roll back to", err)
	}
	if s.current() != a {
		t.Fatalf("current = %s after a refused rollback, want %s", s.current(), a)
	}
	// A new deploy, then a rollback: the bad releases b and c are skipped.
	s.mustDeploy()
	if r := s.mustRollback(""); r.To != a {
		t.Fatalf("rollback after a new deploy went to %s, want %s", r.To, a)
	}
	// An explicit id may go to a release marked bad; it is then good again.
	if r := s.mustRollback(c); r.To != c || s.current() != c {
		t.Fatalf("rollback %s went to %s", c, r.To)
	}
	if len(s.releaseDirs()) != 4 {
		t.Fatalf("rollback deleted something: releases/ = %v", s.releaseDirs())
	}
}

func TestCleanupKeepsNewestCurrentAndRollbackTarget(t *testing.T) {
	s := newSite(t, "keep_releases: 2\nhooks:\n  before_activate:\n    - run: test ! -f \"$FERRY_ROOT/../fail\"\n")
	fail := filepath.Join(filepath.Dir(s.root), "fail")
	failDeploy := func() {
		t.Helper()
		os.WriteFile(fail, nil, 0o644)
		defer os.Remove(fail)
		if _, err := s.deploy(); err == nil {
			t.Fatal("deploy with a failing hook succeeded")
		}
	}
	s.mustDeploy()
	s.mustDeploy()
	s.mustDeploy()
	failDeploy()
	d := s.mustDeploy()
	e := s.mustDeploy()
	if diff := cmp.Diff([]string{d, e}, s.releaseDirs()); diff != "" {
		t.Fatalf("keep_releases: 2 (-want +got):\n%s", diff)
	}
	s.mustRollback("") // e -> d; e is marked bad
	failDeploy()
	f := s.mustDeploy()
	// Newest first: f (current, 1), e (bad but complete, 2), d: beyond keep_releases, but the
	// rollback target from f (e is bad), so kept.
	if diff := cmp.Diff([]string{d, e, f}, s.releaseDirs()); diff != "" {
		t.Errorf("releases after cleanup (-want +got):\n%s", diff)
	}
	if _, err := Cleanup(context.Background(), s.cfg, s.opts, s.rep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{d, e, f}, s.releaseDirs()); diff != "" {
		t.Errorf("ferry cleanup removed the rollback target (-want +got):\n%s", diff)
	}
	if r := s.mustRollback(""); r.To != d {
		t.Errorf("rollback went to %s, want %s", r.To, d)
	}
}

func TestCleanupOrderComesFromTheLogNotMtimes(t *testing.T) {
	s := newSite(t, "keep_releases: 2\n")
	a := s.mustDeploy()
	b := s.mustDeploy()
	// Something touches the oldest release: `ls -t` would now call it the newest.
	future := time.Now().Add(48 * time.Hour)
	os.Chtimes(filepath.Join(s.root, "releases", a), future, future)
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(s.root, "releases", b), past, past)
	c := s.mustDeploy()
	d := s.mustDeploy()
	if diff := cmp.Diff([]string{c, d}, s.releaseDirs()); diff != "" {
		t.Errorf("releases after cleanup (-want +got):\n%s", diff)
	}
}

func TestSharedSurvivesDeploysRollbacksAndCleanups(t *testing.T) {
	s := newSite(t, "keep_releases: 1\nshared:\n  files: [.env]\n  dirs: [public/uploads, storage/logs]\n")
	hostShared(t, s.root, ".env")
	s.mustDeploy()
	// The app writes user data through current/, as it would in production.
	for name, content := range map[string]string{
		"current/public/uploads/avatar.png": "\x89PNG\x00binary",
		"current/storage/logs/app.log":      "line 1\n",
		"current/.env":                      "SECRET=1\n",
	} {
		if err := os.WriteFile(filepath.Join(s.root, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(s.root, "current/public/uploads/2026/11"), 0o755)
	os.WriteFile(filepath.Join(s.root, "current/public/uploads/2026/11/doc.pdf"), []byte("%PDF"), 0o644)
	before, err := invariants.Snapshot(filepath.Join(s.root, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.write("public/index.html", time.Now().String())
		s.mustDeploy()
	}
	s.mustRollback("")
	if _, err := Cleanup(context.Background(), s.cfg, s.opts, s.rep); err != nil {
		t.Fatal(err)
	}
	s.mustDeploy()
	after, err := invariants.Snapshot(filepath.Join(s.root, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("shared/ changed (-before +after):\n%s", diff)
	}
	if got := s.read("current/public/uploads/avatar.png"); got != "\x89PNG\x00binary" {
		t.Fatalf("upload through current/ = %q", got)
	}
}

func TestSharedPathInBuildIsSeededOnceThenSharedWins(t *testing.T) {
	s := newSite(t, "shared:\n  files: [.env]\n  dirs: [public/uploads]\n")
	s.write(".env", "FROM_BUILD=1\n")
	s.write("public/uploads/placeholder.txt", "seed")
	s.mustDeploy()
	if got := s.read("shared/.env"); got != "FROM_BUILD=1\n" {
		t.Fatalf("shared/.env = %q, want it seeded from the build", got)
	}
	if got := s.read("shared/public/uploads/placeholder.txt"); got != "seed" {
		t.Fatalf("shared uploads not seeded: %q", got)
	}
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("EDITED_ON_SERVER=1\n"), 0o600)
	s.write(".env", "FROM_BUILD=2\n")
	s.mustDeploy()
	if got := s.read("current/.env"); got != "EDITED_ON_SERVER=1\n" {
		t.Fatalf("current/.env = %q, want the shared copy", got)
	}
	if !s.rep.warned("shared/.env exists and wins") {
		t.Errorf("no warning that the build's .env was dropped; warnings: %v", s.rep.warnings)
	}
}

func TestFailingHookLeavesCurrentAndRemovesRelease(t *testing.T) {
	s := newSite(t, "hooks:\n  before_activate:\n    - run: echo migrating; test ! -f \"$FERRY_ROOT/../fail\" || { echo 'column exists' >&2; exit 3; }\n")
	good := s.mustDeploy()
	os.WriteFile(filepath.Join(filepath.Dir(s.root), "fail"), nil, 0o644)
	_, err := s.deploy()
	var he *release.HookError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want a hook error", err)
	}
	if !strings.Contains(err.Error(), "column exists") {
		t.Errorf("error does not carry the hook's output: %v", err)
	}
	if s.current() != good {
		t.Errorf("current = %s, want %s", s.current(), good)
	}
	if diff := cmp.Diff([]string{good}, s.releaseDirs()); diff != "" {
		t.Errorf("failed release not removed (-want +got):\n%s", diff)
	}
	s.check()

	_, err = Deploy(context.Background(), s.cfg, DeployOptions{Options: s.opts, KeepFailed: true}, s.rep)
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	if got := len(s.releaseDirs()); got != 2 {
		t.Fatalf("--keep-failed: releases/ = %v", s.releaseDirs())
	}
	// The kept release is never activated, and the next cleanup removes it.
	if _, err := Cleanup(context.Background(), s.cfg, s.opts, s.rep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{good}, s.releaseDirs()); diff != "" {
		t.Errorf("cleanup kept a failed release (-want +got):\n%s", diff)
	}
}

func TestHookTimeoutKillsTheHookAndItsChildren(t *testing.T) {
	s := newSite(t, "hooks:\n  before_activate:\n    - run: sleep 30 & echo $! > \"$FERRY_ROOT/../child.pid\"; wait\n      timeout: 300ms\n")
	start := time.Now()
	_, err := s.deploy()
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("deploy took %s; the hook was not stopped at its timeout", took)
	}
	pid := readPID(t, filepath.Join(filepath.Dir(s.root), "child.pid"))
	waitFor(t, "the hook's child to be killed", func() bool { return syscall.Kill(pid, 0) != nil })
	if _, err := os.Lstat(filepath.Join(s.root, "current")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("current exists after a failed first deploy: %v", err)
	}
	s.check()
}

func TestInterruptDuringPrepareLeavesNothing(t *testing.T) {
	s := newSite(t, "hooks:\n  before_activate:\n    - run: if [ -f \"$FERRY_ROOT/../slow\" ]; then touch \"$FERRY_ROOT/../started\"; sleep 30; fi\n")
	started := filepath.Join(filepath.Dir(s.root), "started")
	good := s.mustDeploy()
	os.WriteFile(filepath.Join(filepath.Dir(s.root), "slow"), nil, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Deploy(ctx, s.cfg, DeployOptions{Options: s.opts}, s.rep)
		done <- err
	}()
	waitFor(t, "the hook to start", func() bool { _, err := os.Stat(started); return err == nil })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	if diff := cmp.Diff([]string{good}, s.releaseDirs()); diff != "" {
		t.Fatalf("interrupted release left behind (-want +got):\n%s", diff)
	}
	s.check()
}

func TestUnusualFileNamesDeploy(t *testing.T) {
	s := newSite(t, "")
	names := []string{"with space.txt", "new\nline.txt", "bad-\xff\xfe-utf8.txt", "quote'\"$(x).txt", "-dash.txt", "ünïcode/файл.txt"}
	for i, n := range names {
		s.write(filepath.Join("public", n), strings.Repeat("x", i+1))
	}
	s.mustDeploy()
	s.write("public/index.html", "v2")
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check()
	for i, n := range names {
		if got := s.read(filepath.Join("current/public", n)); got != strings.Repeat("x", i+1) {
			t.Errorf("%q = %q", n, got)
		}
	}
	if st := res.Hosts[0].Stats; st.Sent != 1 {
		t.Errorf("second deploy sent %d files, want 1 (odd names must be reused too)", st.Sent)
	}
}

func TestBadSourceChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *site)
		want  string
	}{
		{"missing source", func(s *site) { os.RemoveAll(s.src) }, "no such file"},
		{"symlink out of the build", func(s *site) { os.Symlink("../../etc/passwd", filepath.Join(s.src, "public/passwd")) }, "outside the build"},
		{"absolute symlink", func(s *site) { os.Symlink("/etc/passwd", filepath.Join(s.src, "passwd")) }, "absolute path"},
		{"fifo", func(s *site) { syscall.Mkfifo(filepath.Join(s.src, "pipe"), 0o644) }, "only files, directories and symlinks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			tc.setup(s)
			_, err := s.deploy()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Lstat(s.root); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("root was created: %v", err)
			}
		})
	}
}

func TestSymlinkInsideBuildIsKept(t *testing.T) {
	s := newSite(t, "")
	os.Symlink("index.html", filepath.Join(s.src, "public/home.html"))
	s.mustDeploy()
	if got := s.read("current/public/home.html"); got != "hello" {
		t.Fatalf("home.html = %q", got)
	}
}

func TestNextDeployRecoversWhatACrashLeft(t *testing.T) {
	s := newSite(t, "")
	good := s.mustDeploy()
	// A crash mid-swap leaves a temporary link; a crash mid-prepare an incomplete release.
	os.Symlink("releases/"+good, filepath.Join(s.root, "current.1a2b3c4d5e6f"))
	// A user's link that only looks like one is left alone.
	os.Symlink("releases/"+good, filepath.Join(s.root, "current.mine"))
	f, _ := os.OpenFile(filepath.Join(s.root, ".ferry/log.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2020-01-01T00:00:00Z","event":"prepare","release":"20200101-000000"}` + "\n")
	f.Close()
	os.MkdirAll(filepath.Join(s.root, "releases/20200101-000000"), 0o755)
	os.WriteFile(filepath.Join(s.root, "releases/20200101-000000/half"), []byte("x"), 0o644)
	next := s.mustDeploy()
	if !s.rep.warned("temporary link current.1a2b3c4d5e6f") || !s.rep.warned("incomplete release 20200101-000000") {
		t.Errorf("no warnings about what was recovered: %v", s.rep.warnings)
	}
	if diff := cmp.Diff([]string{good, next}, s.releaseDirs()); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "current.mine")); err != nil {
		t.Errorf("a user's link named current.mine was removed: %v", err)
	}
}

func TestCurrentAsDirectoryIsRefused(t *testing.T) {
	s := newSite(t, "")
	os.MkdirAll(filepath.Join(s.root, "current"), 0o755)
	_, err := s.deploy()
	var he *release.HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "mv ") {
		t.Fatalf("err = %v, want a hint to move current aside", err)
	}
	if len(s.releaseDirs()) != 0 {
		t.Fatalf("a release was created: %v", s.releaseDirs())
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	s := newSite(t, "shared:\n  dirs: [public/uploads]\n")
	res, err := Deploy(context.Background(), s.cfg, DeployOptions{Options: s.opts, DryRun: true}, s.rep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run created the root: %v", err)
	}
	if p := res.Plans[0]; !p.NewRoot || p.Stats.Sent != 2 {
		t.Fatalf("plan = %+v", p)
	}
	s.mustDeploy()
	snap, _ := invariants.Snapshot(s.root)
	s.write("public/index.html", "v2")
	res, err = Deploy(context.Background(), s.cfg, DeployOptions{Options: s.opts, DryRun: true}, s.rep)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Plans[0]; p.Stats.Sent != 1 || p.Stats.Reused != 1 {
		t.Fatalf("plan = %+v, want 1 sent 1 reused", p)
	}
	after, _ := invariants.Snapshot(s.root)
	if diff := cmp.Diff(snap, after); diff != "" {
		t.Fatalf("dry run changed the root (-before +after):\n%s", diff)
	}
}

func TestAfterActivateFailureIsAWarning(t *testing.T) {
	s := newSite(t, "hooks:\n  after_activate:\n    - run: exit 7\n")
	id := s.mustDeploy()
	if s.current() != id || !s.rep.warned("exit status 7") {
		t.Fatalf("current = %s, warnings %v", s.current(), s.rep.warnings)
	}
}

func TestHooksSeeTheFerryEnvironment(t *testing.T) {
	s := newSite(t, "hooks:\n  before_activate:\n    - run: env | grep ^FERRY_ | sort > env.txt\n")
	first := s.mustDeploy()
	second := s.mustDeploy()
	got := s.read("current/env.txt")
	for _, want := range []string{
		"FERRY_RELEASE=" + second, "FERRY_PREVIOUS_RELEASE=" + first, "FERRY_ROOT=" + s.root,
		"FERRY_RELEASE_DIR=" + filepath.Join(s.root, "releases", second), "FERRY_SHARED_DIR=" + filepath.Join(s.root, "shared"), "FERRY_HOST=local",
	} {
		if !slices.Contains(strings.Split(got, "\n"), want) {
			t.Errorf("hook environment lacks %s:\n%s", want, got)
		}
	}
}

// .ferry/ is the deploy user's alone, the log keeps no hook output (a hook that printed a
// database URL), and the hashes of shared files it keeps are keyed, so that a short secret
// cannot be guessed from them.
func TestStateKeepsNoSecrets(t *testing.T) {
	t.Setenv("FERRY_TEST_TOKEN", `s3cr3t\x"token`) // %q would escape it, past a CI's masking
	s := newSite(t, "shared:\n  files: [.env, config/secrets.yml]\nhooks:\n  before_activate:\n    - run: cat \"$FERRY_ROOT/../url\"; test -n '{{env.FERRY_TEST_TOKEN}}'; test ! -f \"$FERRY_ROOT/../fail\"\n")
	os.MkdirAll(filepath.Dir(s.root), 0o755)
	os.WriteFile(filepath.Join(filepath.Dir(s.root), "url"), []byte("postgres://app:hunter2@db/app\n"), 0o600)
	s.write(".env", "SECRET=1\n")
	hostShared(t, s.root, "config/secrets.yml")
	s.mustDeploy()
	os.WriteFile(filepath.Join(filepath.Dir(s.root), "fail"), nil, 0o644)
	_, err := s.deploy()
	if err == nil || !strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the failed hook's error does not show its output to the user: %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "{{env.FERRY_TEST_TOKEN}}") {
		t.Errorf("the failed hook's error shows a value from the deployer's environment: %v", err)
	}
	log, err := os.ReadFile(filepath.Join(s.root, ".ferry/log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "hunter2") {
		t.Errorf("the log keeps the hook's output:\n%s", log)
	}
	// The hook's command is logged with the CI secret it was given written as where it came from.
	if strings.Contains(string(log), "s3cr3t") || !strings.Contains(string(log), "{{env.FERRY_TEST_TOKEN}}") {
		t.Errorf("the log keeps a value from the deployer's environment:\n%s", log)
	}
	plain := sha256.Sum256([]byte("SECRET=1\n"))
	if strings.Contains(string(log), hex.EncodeToString(plain[:])) {
		t.Errorf("the log keeps the plain SHA-256 of .env")
	}
	if !strings.Contains(string(log), `"shared":{".env":"`) {
		t.Errorf("the log keeps no hash of .env to tell when it changed:\n%s", log)
	}
	// config/secrets.yml, on neither side, is created empty, and private; .env, seeded from
	// the build's (0644 under this umask), is private too.
	for p, want := range map[string]os.FileMode{".ferry": 0o700, ".ferry/key": 0o600, "shared/config/secrets.yml": 0o600, "shared/.env": 0o600} {
		fi, err := os.Stat(filepath.Join(s.root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// A shared directory that is itself a symlink (shared/public/uploads -> a second disk) is used
// as the directory it points to, and never deleted through, by deploys, rollbacks or cleanup.
func TestSharedDirThatIsASymlinkIsUsedNotDeletedThrough(t *testing.T) {
	s := newSite(t, "keep_releases: 1\nshared:\n  dirs: [public/uploads]\n")
	disk := filepath.Join(filepath.Dir(s.root), "disk", "uploads")
	os.MkdirAll(disk, 0o755)
	os.WriteFile(filepath.Join(disk, "photo.jpg"), []byte("jpeg"), 0o644)
	os.MkdirAll(filepath.Join(s.root, "shared", "public"), 0o755)
	if err := os.Symlink(disk, filepath.Join(s.root, "shared", "public", "uploads")); err != nil {
		t.Fatal(err)
	}
	s.mustDeploy()
	for i := range 3 {
		s.write("public/index.html", fmt.Sprint(i))
		s.mustDeploy()
	}
	s.mustRollback("")
	if _, err := Cleanup(context.Background(), s.cfg, s.opts, s.rep); err != nil {
		t.Fatal(err)
	}
	s.releaseDirs()
	if got := s.read("current/public/uploads/photo.jpg"); got != "jpeg" {
		t.Errorf("current/public/uploads/photo.jpg = %q", got)
	}
	if got, err := os.ReadFile(filepath.Join(disk, "photo.jpg")); err != nil || string(got) != "jpeg" {
		t.Errorf("the second disk lost its file: %q, %v", got, err)
	}
}

// Links planted at the names of ferry's own files and directories (the key, the settled stamp,
// the log, the lock, the process records, shared/, run/, .ferry itself) are refused before
// anything is made, never written, read or deleted through.
func TestPlantedLinksInFerrysStateAreRefused(t *testing.T) {
	for _, name := range []string{".ferry/key", ".ferry/settled", ".ferry/log.jsonl", ".ferry/lock", ".ferry/proc", ".ferry/manifests", ".ferry", "shared", "run", "releases"} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			s := newSite(t, "shared:\n  files: [.env]\n")
			s.write(".env", "A=1\n")
			good := s.mustDeploy()
			victim := filepath.Join(filepath.Dir(s.root), "victim")
			os.Mkdir(victim, 0o755)
			os.WriteFile(filepath.Join(victim, "precious"), []byte("precious"), 0o644)
			p := filepath.Join(s.root, name)
			target := filepath.Join(victim, "precious")
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				target = victim
				os.Rename(p, p+".moved")
			} else {
				os.Remove(p)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			s.write("public/index.html", "v2")
			if _, err := s.deploy(); err == nil || !strings.Contains(err.Error(), "is a symlink") {
				t.Fatalf("deploy with %s a planted link: %v; want it refused", name, err)
			}
			if entries, _ := os.ReadDir(victim); len(entries) != 1 {
				t.Errorf("something was made through the link: %v", entries)
			}
			if b, _ := os.ReadFile(filepath.Join(victim, "precious")); string(b) != "precious" {
				t.Errorf("the link's target was written: %q", b)
			}
			if name != "releases" && s.current() != good {
				t.Errorf("current = %s, want %s", s.current(), good)
			}
		})
	}
}

// Records of processes in .ferry/proc are ferry's own, but they are read as data: a socket path
// that leaves run/ is never removed (pid 1 is TestAliveNeverCountsPIDOne).
func TestProcessRecordsCannotReachOutside(t *testing.T) {
	s := newSite(t, "")
	s.mustDeploy()
	victim := filepath.Join(filepath.Dir(s.root), "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	proc := filepath.Join(s.root, ".ferry", "proc")
	os.MkdirAll(proc, 0o700)
	// A dead process (pid 999999 does not exist) whose socket "leaves" run/.
	os.WriteFile(filepath.Join(proc, "app.20200101-000000"), []byte("999999 1 ../victim\n"), 0o600)
	os.WriteFile(filepath.Join(proc, "web.20200101-000000"), []byte("999999 1 run/../../victim\n"), 0o600)
	s.write("public/index.html", "v2")
	s.mustDeploy()
	if b, err := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("a process record's socket path deleted a file outside run/: %q, %v", b, err)
	}
}

// A .ferry that another user owns (here: one the app user, owner of the root, made after moving
// ferry's aside), or a root another user owns (who could do that while a run goes on), is
// refused: what is in .ferry decides what ferry deletes and signals. ferry check says so too.
func TestFerryStateOfAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		hostileSkip(t, "this test gives .ferry to another user, which needs root")
	}
	for _, which := range []string{".ferry", "."} {
		t.Run(which, func(t *testing.T) {
			s := newSite(t, "")
			good := s.mustDeploy()
			p := filepath.Join(s.root, which)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			s.write("public/index.html", "v2")
			_, err := s.deploy()
			if err == nil || !strings.Contains(err.Error(), "not to root, who runs ferry") && !strings.Contains(err.Error(), "belongs to another user") {
				t.Fatalf("deploy with %s owned by nobody: %v; want it refused", which, err)
			}
			if s.current() != good {
				t.Errorf("current = %s, want %s", s.current(), good)
			}
			findings, err := Check(context.Background(), s.cfg, s.opts, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(findings, func(f check.Finding) bool { return f.Code == "state-owner" || f.Code == "root-owner" }) {
				t.Errorf("ferry check does not say who owns %s: %v", which, findings)
			}
			os.Chown(p, 0, 0)
			s.mustDeploy()
		})
	}
}
