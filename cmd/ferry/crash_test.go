package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// buildFerry compiles the real binary once per test binary run.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// crashSite is a build of many files and a config, for tests that run the real binary.
type crashSite struct {
	t      *testing.T
	bin    string
	dir    string
	root   string
	build  string
	shared []string
	env    []string // extra environment of ferry (HOME for SSH)
	hosts  string   // the hosts: section
	// idle waits until what a killed run left running on the host has ended: its last script
	// goes on, on the SSH host or here.
	idle func()
	// settled, if set, checks more once a deploy after a kill finished.
	settled func()
}

func newCrashSite(t *testing.T, files int, hook string) *crashSite {
	return newCrashSiteOn(t, files, hook, "", nil)
}

// localScriptsIdle waits until no script of a killed local run is left: ferry runs each in
// sh -s, in a process group of its own, so a SIGKILL of ferry leaves it running to its end.
// They are found by the tag ferry's environment gave them.
func localScriptsIdle(t *testing.T, tag string) func() {
	return func() {
		deadline := time.Now().Add(60 * time.Second)
		for {
			busy := 0
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				if _, err := strconv.Atoi(e.Name()); err != nil {
					continue
				}
				cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
				if string(cmdline) == "sh\x00-s\x00" && bytes.Contains(env, []byte(tag+"\x00")) {
					busy++
				}
			}
			if busy == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d scripts of killed runs still run after a minute", busy)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// newCrashSiteSSH deploys over SSH to a real sshd on loopback, with ~/.ssh set up in a HOME of
// the test's own.
func newCrashSiteSSH(t *testing.T, files int) *crashSite {
	client := webtest.NewSSHClient(t)
	server := webtest.StartSSHD(t, client, false)
	client.Alias(t, "web1", server)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	for name, from := range map[string]string{"config": client.Config, "known_hosts": client.KnownHosts} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(home, ".ssh", name), b, 0o600)
	}
	s := newCrashSiteOn(t, files, "true", "hosts:\n  - ssh: web1\n", []string{"HOME=" + home})
	s.idle = func() { server.WaitIdle(t, 60*time.Second) }
	return s
}

func newCrashSiteOn(t *testing.T, files int, hook, hosts string, env []string) *crashSite {
	t.Helper()
	s := &crashSite{t: t, bin: buildFerry(t), dir: t.TempDir(), shared: []string{".env", "public/uploads"}, env: env, hosts: hosts}
	if !strings.Contains(hosts, "ssh:") {
		tag := fmt.Sprintf("FERRY_TEST_RUN=%d", time.Now().UnixNano())
		s.env = append(s.env, tag)
		s.idle = localScriptsIdle(t, tag)
	}
	s.root = filepath.Join(s.dir, "srv")
	s.build = filepath.Join(s.dir, "build")
	for i := range files {
		p := filepath.Join(s.build, "public", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("file-%05d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i%26)}, 200+i%1800), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The operator made shared/.env before the first deploy, as ferry asks.
	os.MkdirAll(filepath.Join(s.root, "shared"), 0o755)
	os.WriteFile(filepath.Join(s.root, "shared", ".env"), nil, 0o600)
	cfg := fmt.Sprintf("root: %s\nsource: ./build\nkeep_releases: 3\nshared:\n  files: [.env]\n  dirs: [public/uploads]\nhooks:\n  before_activate:\n    - run: %q\n%s", s.root, hook, s.hosts)
	if err := os.WriteFile(filepath.Join(s.dir, "ferry.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *crashSite) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	return cmd
}

// deploy runs a deploy to the end and returns its stderr.
func (s *crashSite) deploy() string {
	s.t.Helper()
	var stderr bytes.Buffer
	cmd := s.command("deploy")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("deploy: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}

// change rewrites a random file of the build, so that every deploy has something to send.
func (s *crashSite) change(rng *rand.Rand) {
	i := rng.IntN(50)
	p := filepath.Join(s.build, "public", fmt.Sprintf("d%02d", i), "changed.txt")
	os.WriteFile(p, []byte(strconv.FormatUint(rng.Uint64(), 10)), 0o644)
}

func (s *crashSite) check(settled bool) {
	s.t.Helper()
	for _, err := range invariants.Check(s.root, invariants.Options{Settled: settled, Shared: s.shared}) {
		s.t.Error(err)
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// lastStep is the step of the last progress line in ferry's stderr.
func lastStep(stderr string) string {
	step := "start"
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "local" || f[0] == "web1") {
			step = f[1]
		}
	}
	return step
}

// TestKilledDeployNeverBreaksCurrent kills ferry with SIGKILL at random instants of deploys of
// 5,000 files: afterwards current must resolve to a complete release that matches its manifest,
// shared/ must be intact, and the next deploy must succeed, taking over the dead run's lock.
// FERRY_TEST_SOAK=1 raises the 20 kills of the default run to 200.
func TestKilledDeployNeverBreaksCurrent(t *testing.T) {
	kills := 20
	if os.Getenv("FERRY_TEST_SOAK") != "" {
		kills = 200
	}
	killLoop(t, newCrashSite(t, 5000, "true"), kills)
}

// TestKilledSSHDeployNeverBreaksCurrent does the same to deploys over SSH: 10 kills by default,
// 100 with FERRY_TEST_SOAK=1.
func TestKilledSSHDeployNeverBreaksCurrent(t *testing.T) {
	kills := 10
	if os.Getenv("FERRY_TEST_SOAK") != "" {
		kills = 100
	}
	killLoop(t, newCrashSiteSSH(t, 2000), kills)
}

func killLoop(t *testing.T, s *crashSite, kills int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	s.deploy()
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("SECRET=1\n"), 0o600)
	os.WriteFile(filepath.Join(s.root, "shared/public/uploads/photo.jpg"), []byte("jpeg"), 0o644)
	sharedBefore, err := invariants.Snapshot(filepath.Join(s.root, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	// How long a whole deploy takes here; kills land uniformly within 1.2 times that.
	s.change(rng)
	start := time.Now()
	s.deploy()
	span := time.Since(start) * 12 / 10

	phases := map[string]int{}
	tookOver := 0
	for i := range kills {
		s.change(rng)
		var stderr bytes.Buffer
		cmd := s.command("deploy")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(span)))) // the kill instant, not a synchronisation
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		phases[lastStep(stderr.String())]++

		// The killed run's last script goes on (on the SSH host, or here in a process group of
		// its own). Every other time the next deploy waits for it to end, so that the root can
		// be checked as the kill left it; the other times it races what is left of the killed
		// run, as a user's next deploy may.
		settle := i%2 == 0
		if settle {
			s.idle()
		}
		if settle {
			s.check(false)
		}
		_, lockErr := os.Stat(filepath.Join(s.root, ".ferry/lock"))
		out := s.deploy()
		if settle && lockErr == nil {
			if !strings.Contains(out, "took over a stale lock") {
				t.Fatalf("the dead run's lock was not taken over with a warning:\n%s", out)
			}
			tookOver++
		}
		if !settle {
			s.idle() // what is left of the killed run, which this deploy raced
		}
		s.check(true)
		if s.settled != nil {
			s.settled()
		}
	}
	sharedAfter, err := invariants.Snapshot(filepath.Join(s.root, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sharedBefore, sharedAfter); diff != "" {
		t.Fatalf("shared/ changed (-before +after):\n%s", diff)
	}
	var seen []string
	for p, n := range phases {
		seen = append(seen, fmt.Sprintf("%s:%d", p, n))
	}
	sort.Strings(seen)
	t.Logf("%d kills, by last step reported: %s; stale locks taken over: %d", kills, strings.Join(seen, " "), tookOver)
}

// TestKilledSocketDeployLeavesOneProcess kills ferry at random instants of deploys of an app
// server behind a socket link (examples/app, switch: socket): once the next deploy finished,
// app.sock points at the current release's socket, which answers, and once the old processes
// drained, the current release's is the only one running. 10 kills, 100 with FERRY_TEST_SOAK=1.
func TestKilledSocketDeployLeavesOneProcess(t *testing.T) {
	kills := 10
	if os.Getenv("FERRY_TEST_SOAK") != "" {
		kills = 100
	}
	s := newCrashSiteOn(t, 500, "true", "services:\n  - name: app\n    switch: socket\n    start: exec ./app\n    drain: 1s\n", nil)
	app := filepath.Join(s.build, "app")
	if out, err := exec.Command("go", "build", "-o", app, "../../examples/app").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/app: %v\n%s", err, out)
	}
	t.Cleanup(func() { killGroups(s.root) })
	s.settled = func() {
		cur, _ := os.Readlink(filepath.Join(s.root, "current"))
		id := strings.TrimPrefix(cur, "releases/")
		if link, _ := os.Readlink(filepath.Join(s.root, "app.sock")); !strings.HasPrefix(link, "run/app."+id+".") || !strings.HasSuffix(link, ".sock") {
			t.Fatalf("app.sock -> %q, want the current release %s's socket", link, id)
		}
		conn, err := net.Dial("unix", filepath.Join(s.root, "app.sock"))
		if err != nil {
			t.Fatalf("app.sock does not answer: %v", err)
		}
		conn.Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			running := runningGroups(s.root)
			if len(running) == 1 && running[0] == id {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("processes of releases %v still run, want only %s's", running, id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	killLoop(t, s, kills)
}

// runningGroups lists the releases whose process, as ferry recorded it under root, runs.
func runningGroups(root string) []string {
	files, _ := filepath.Glob(filepath.Join(root, ".ferry", "proc", "*"))
	var out []string
	for _, f := range files {
		var pid int
		var start string
		b, _ := os.ReadFile(f)
		if n, _ := fmt.Sscan(string(b), &pid, &start); n != 2 {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if fields[0] != "Z" && fields[19] == start {
			id := strings.TrimPrefix(filepath.Base(f), "app.")
			id, _, _ = strings.Cut(id, ".stopping.")
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// killGroups kills the process groups of every process ferry recorded under root.
func killGroups(root string) {
	files, _ := filepath.Glob(filepath.Join(root, ".ferry", "proc", "*"))
	for _, f := range files {
		var pid int
		b, _ := os.ReadFile(f)
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// TestInterruptedDeployLeavesNothingBehind sends SIGINT while a hook runs: ferry stops the hook,
// removes the partial release, releases the lock and exits 1; current is unchanged.
func TestInterruptedDeployLeavesNothingBehind(t *testing.T) {
	s := newCrashSite(t, 100, `if [ -f ../../../slow ]; then touch ../../../started; sleep 60; fi`)
	s.deploy()
	good, _ := os.Readlink(filepath.Join(s.root, "current"))
	cmd, stderr := s.deployUntilTheHookStarts()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted while preparing") {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
	}
	if now, _ := os.Readlink(filepath.Join(s.root, "current")); now != good {
		t.Fatalf("current = %s, want %s", now, good)
	}
	// The interrupted release is renamed aside (releases/.ferry-trash-*) and deleted in the
	// background.
	var names []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		entries, _ := os.ReadDir(filepath.Join(s.root, "releases"))
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(names) != 1 {
		t.Fatalf("releases/ holds %q after an interrupted deploy, want only %s", names, good)
	}
	s.check(true)
}

// An interrupt during an after_activate hook stops it at once (not after hook_timeout): the
// hook's processes are killed, the new release stays live, the run cleans up and unlocks, and
// ferry exits 1 saying what did not finish.
func TestInterruptDuringAfterActivateStopsTheHook(t *testing.T) {
	s := newCrashSite(t, 10, "true")
	hook := `if [ -f ../../../slow ]; then sleep 60 & echo $! > ../../../sleep.pid; touch ../../../started; wait; fi`
	cfg := fmt.Sprintf("root: %s\nsource: ./build\nshared:\n  files: [.env]\n  dirs: [public/uploads]\nhooks:\n  after_activate:\n    - run: %q\n      timeout: 10m\n", s.root, hook)
	if err := os.WriteFile(filepath.Join(s.dir, "ferry.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.deploy()
	cmd, stderr := s.deployUntilTheHookStarts()
	live, _ := os.Readlink(filepath.Join(s.root, "current"))
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "was stopped") || !strings.Contains(stderr.String(), "it is live") {
		t.Errorf("stderr does not say what was interrupted:\n%s", stderr.String())
	}
	if now, _ := os.Readlink(filepath.Join(s.root, "current")); now != live {
		t.Errorf("current = %s, want the new release %s to stay live", now, live)
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "sleep.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d still runs", pid)
		}
	}
	s.check(true)
}

// deployUntilTheHookStarts starts a deploy whose hook waits (the file slow exists) and returns
// once the hook has touched started.
func (s *crashSite) deployUntilTheHookStarts() (*exec.Cmd, *bytes.Buffer) {
	s.t.Helper()
	os.WriteFile(filepath.Join(s.dir, "slow"), nil, 0o644)
	var stderr bytes.Buffer
	cmd := s.command("deploy")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(s.dir, "started")); err == nil {
			return cmd, &stderr
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			s.t.Fatalf("hook never started:\n%s", stderr.String())
		}
	}
}
