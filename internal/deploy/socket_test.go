package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/probe"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// TestMain removes the example app built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if appBuild.dir != "" {
		os.RemoveAll(appBuild.dir)
	}
	os.Exit(code)
}

var appBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// exampleApp builds examples/app once per test binary.
func exampleApp(t *testing.T) string {
	t.Helper()
	appBuild.once.Do(func() {
		if appBuild.dir, appBuild.err = os.MkdirTemp("", "ferry-app-"); appBuild.err != nil {
			return
		}
		appBuild.bin = filepath.Join(appBuild.dir, "app")
		out, err := exec.Command("go", "build", "-o", appBuild.bin, "../../examples/app").CombinedOutput()
		if err != nil {
			appBuild.err = fmt.Errorf("go build examples/app: %v\n%s", err, out)
		}
	})
	if appBuild.err != nil {
		t.Fatal(appBuild.err)
	}
	return appBuild.bin
}

// appSite is a site whose build is examples/app, run as a socket service. start may use
// ./app; drain is the service's drain.
func appSite(t *testing.T, start, drain, extra string) *site {
	t.Helper()
	bin := exampleApp(t)
	s := newSite(t, fmt.Sprintf("services:\n  - name: app\n    switch: socket\n    start: %q\n    drain: %s\n%s", start, drain, extra))
	t.Cleanup(func() { killApps(t, s.root) })
	os.RemoveAll(s.src)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	s.write("app", string(b))
	if err := os.Chmod(filepath.Join(s.src, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// killApps kills every process ferry started under root (by the process groups its files
// name), so that no test leaves one running.
func killApps(t *testing.T, root string) {
	files, _ := filepath.Glob(filepath.Join(root, ".ferry", "proc", "*"))
	for _, f := range files {
		if pid, _ := procOf(f); pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// procOf reads a process file of ferry's: "<pid> <start time> <socket>".
func procOf(file string) (pid int, start string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, ""
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, ""
	}
	pid, _ = strconv.Atoi(f[0])
	return pid, f[1]
}

// runningApps lists the releases whose app process runs under root.
func runningApps(root string) []string {
	files, _ := filepath.Glob(filepath.Join(root, ".ferry", "proc", "app.*"))
	var out []string
	for _, f := range files {
		pid, start := procOf(f)
		if pid == 0 {
			continue
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if fields[0] != "Z" && fields[19] == start {
			id := strings.TrimPrefix(filepath.Base(f), "app.")
			id, _, _ = strings.Cut(id, ".stopping.")
			out = append(out, id)
		}
	}
	return out
}

// getSocket fetches path from the app behind a unix socket.
func getSocket(t *testing.T, sock, path string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://app" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, sock, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s on %s: HTTP %d: %s", path, sock, resp.StatusCode, b)
	}
	return string(b)
}

func (s *site) appVersion(v string) { s.write("VERSION", v) }

// startAppNginx starts nginx with examples/app/nginx.conf for the site's root.
func startAppNginx(t *testing.T, s *site) *webtest.Nginx {
	t.Helper()
	block := strings.ReplaceAll(readServerBlock(t, "app"), "/srv/www/app.example.com", s.root)
	return webtest.StartNginx(t, webtest.NginxOptions{ServerBlock: block, Root: s.root})
}

// waitOneApp waits until exactly the current release's process runs: every other drained.
func waitOneApp(t *testing.T, s *site) {
	t.Helper()
	waitFor(t, "only the current release's process to run", func() bool {
		apps := runningApps(s.root)
		return len(apps) == 1 && apps[0] == s.current()
	})
}

// TestSocketSwitchDropsNothingBehindNginx runs 50 deploys and 10 rollbacks of examples/app
// behind a real nginx with the example's config, under a keep-alive load without retries:
// nothing fails, every answer comes from a release that was live, and in the end only the
// current release's process runs.
func TestSocketSwitchDropsNothingBehindNginx(t *testing.T) {
	s := appSite(t, "exec ./app", "10s", "")
	s.appVersion("v0")
	s.mustDeploy()
	ngx := startAppNginx(t, s)
	if got := get(t, ngx.URL("/")); !markerRe.MatchString(got) || !strings.Contains(got, "v0") {
		t.Fatalf("page through nginx: %q", got)
	}

	results, ops := deployUnderLoad(s, probe.Options{Addr: ngx.Addr, Path: "/", Conns: 4, Marker: markerRe}, s.appVersion)
	sum := probe.Summarize(results)
	t.Logf("%s during 50 deploys and 10 rollbacks", sum)
	if sum.Non2xx != 0 || sum.ConnErrors != 0 {
		t.Fatalf("%s; first: %v", sum, sum.FirstErrors)
	}
	if sum.Requests < 1000 {
		t.Fatalf("only %d requests: the load proves nothing", sum.Requests)
	}
	checkFresh(t, results, ops, "v0")
	waitOneApp(t, s)
	// run/app.<release>.sock, or run/app.<release>.<n>.sock for a release started again while
	// its previous process drained.
	if link, _ := os.Readlink(filepath.Join(s.root, "app.sock")); !strings.HasPrefix(link, "run/app."+s.current()+".") || !strings.HasSuffix(link, ".sock") {
		t.Fatalf("app.sock -> %s, want the current release's socket", link)
	}
}

// TestSocketSlowRequestInFlightCompletes: a 2 s request the old process is serving when the
// deploy swaps finishes with 200 from the old release.
func TestSocketSlowRequestInFlightCompletes(t *testing.T) {
	s := appSite(t, "exec ./app", "10s", "")
	s.appVersion("v1")
	old := s.mustDeploy()
	ngx := startAppNginx(t, s)

	type answer struct {
		body string
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		resp, err := http.Get(ngx.URL("/slow?ms=2000"))
		if err != nil {
			slow <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- answer{body: fmt.Sprintf("%d %s", resp.StatusCode, b)}
	}()
	// The old process logs each slow request as it starts.
	logFile := filepath.Join(s.root, "run", "app."+old+".log")
	waitFor(t, "the slow request to reach the old process", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "slow request")
	})
	s.appVersion("v2")
	s.mustDeploy()
	if got := get(t, ngx.URL("/")); !strings.Contains(got, "v2") {
		t.Fatalf("after the deploy: %q", got)
	}
	a := <-slow
	if a.err != nil || !strings.HasPrefix(a.body, "200 ") || !strings.Contains(a.body, "v1") {
		t.Fatalf("slow request across the deploy: %q, %v; want 200 from v1", a.body, a.err)
	}
	waitOneApp(t, s)
}

// TestSocketProcessThatNeverAnswersChangesNothing: a release whose process never serves fails
// the deploy (exit 1 in the CLI) within the health timeout; the old process keeps serving,
// the new one is killed and its release removed.
func TestSocketNeverAnswersChangesNothing(t *testing.T) {
	s := appSite(t, "if [ -f BROKEN ]; then echo 'waiting for a database that never comes'; exec sleep 600; fi; exec ./app", "10s", "")
	s.appVersion("v1")
	good := s.mustDeploy()
	ngx := startAppNginx(t, s)
	s.cfg.Health = &config.Health{URL: ngx.URL("/healthz"), ExpectStatus: 200, Contains: "{{release}}",
		Timeout: config.Duration(time.Second), Interval: config.Duration(50 * time.Millisecond)}
	s.appVersion("v2")
	s.write("BROKEN", "")
	_, err := s.deploy()
	if err == nil {
		t.Fatal("the deploy of a release whose process never answers succeeded")
	}
	for _, want := range []string{"did not answer", "waiting for a database that never comes", "nothing was activated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	if got := getSocket(t, filepath.Join(s.root, "app.sock"), "/"); !strings.Contains(got, "v1") {
		t.Fatalf("app.sock after the failed deploy: %q", got)
	}
	if apps := runningApps(s.root); len(apps) != 1 || apps[0] != good {
		t.Fatalf("processes running: %v, want only %s's", apps, good)
	}
	if n := len(s.releaseDirs()); n != 1 {
		t.Fatalf("%d releases on disk, want 1: the failed one is removed", n)
	}
	if out, _ := exec.Command("pgrep", "-f", "^sleep 600$").Output(); len(out) > 0 {
		t.Fatalf("the failed release's process still runs: pid %s", out)
	}
}

// TestSocketProcessThatExitsShowsItsOutput: a process that exits at once fails the deploy with
// the end of its output, without waiting for the timeout.
func TestSocketProcessThatExitsShowsItsOutput(t *testing.T) {
	s := appSite(t, "if [ -f BROKEN ]; then echo 'FATAL: cannot open storage/app.db' >&2; exit 3; fi; exec ./app", "10s", "")
	s.appVersion("v1")
	good := s.mustDeploy()
	s.write("BROKEN", "")
	_, err := s.deploy()
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "FATAL: cannot open storage/app.db") {
		t.Fatalf("err = %v, want the process's exit and its output", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	getSocket(t, filepath.Join(s.root, "app.sock"), "/healthz")
}

// TestSocketProcessThatIgnoresTERMIsKilledAfterDrain: the old process ignores SIGTERM; it
// still runs after the deploy, and is gone once its drain is over.
func TestSocketIgnoresTERMKilledAfterDrain(t *testing.T) {
	s := appSite(t, "APP_IGNORE_TERM=$(cat IGNORE 2>/dev/null) exec ./app", "3s", "")
	s.appVersion("v1")
	s.write("IGNORE", "1")
	stubborn := s.mustDeploy()
	pid, _ := procOf(filepath.Join(s.root, ".ferry", "proc", "app."+stubborn))
	os.Remove(filepath.Join(s.src, "IGNORE"))
	s.appVersion("v2")
	s.mustDeploy()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the process that ignores SIGTERM is gone at once (%v): was it sent SIGKILL without a drain?", err)
	}
	waitFor(t, "the stubborn process to be killed", func() bool { return syscall.Kill(pid, 0) != nil })
	waitOneApp(t, s)
	if _, err := os.Stat(filepath.Join(s.root, "releases", stubborn)); err != nil {
		t.Fatalf("the drained release was removed: %v", err)
	}
}

// TestSocketRollbackStartsTheTargetAgain: after a deploy the previous release's process is
// stopped; a rollback starts it again before the swap, and stops the one it leaves.
func TestSocketRollbackStartsTheTargetAgain(t *testing.T) {
	s := appSite(t, "exec ./app", "10s", "")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	s.appVersion("v2")
	v2 := s.mustDeploy()
	waitOneApp(t, s)
	s.mustRollback("")
	if s.current() != v1 {
		t.Fatalf("current = %s, want %s", s.current(), v1)
	}
	// The rollback says it lets the process it left drain.
	if !slices.ContainsFunc(s.rep.kept, func(st Step) bool { return st.Kind == StepStop && st.Release == v2 && st.Service == "app" }) {
		t.Errorf("the rollback did not report the drain of %s's process: %v", v2, s.rep.steps)
	}
	if got := getSocket(t, filepath.Join(s.root, "app.sock"), "/"); !strings.Contains(got, "v1") {
		t.Fatalf("app.sock after the rollback: %q", got)
	}
	waitOneApp(t, s)
	// ferry status shows where app.sock points and which processes run.
	st, err := Status(context.Background(), s.cfg, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Sockets["app.sock"] != v1 || len(st[0].Processes) != 1 || st[0].Processes[0].Release != v1 || st[0].Processes[0].State != "running" {
		t.Fatalf("status: sockets %v, processes %+v; want app.sock at %s and its process running", st[0].Sockets, st[0].Processes, v1)
	}
}

// TestSocketKeepReleasesNeverRemovesARunningRelease: with keep_releases: 1, a release whose
// process still drains is kept, with a warning, and removed by a later run.
func TestSocketKeepsARunningRelease(t *testing.T) {
	s := appSite(t, "APP_IGNORE_TERM=1 exec ./app", "60s", "keep_releases: 1\n")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	s.appVersion("v2")
	s.mustDeploy()
	s.appVersion("v3")
	s.mustDeploy() // v1 is beyond keep, and its process (which ignores TERM) still drains
	if _, err := os.Stat(filepath.Join(s.root, "releases", v1)); err != nil {
		t.Fatalf("release %s was removed while its process ran: %v", v1, err)
	}
	if !s.rep.warned("its app process still runs") {
		t.Errorf("no warning that the release was kept")
	}
	killApps(t, s.root) // what the end of the drain would do
	waitFor(t, "the processes to die", func() bool { return len(runningApps(s.root)) == 0 })
	s.appVersion("v4")
	s.mustDeploy()
	if _, err := os.Stat(filepath.Join(s.root, "releases", v1)); err == nil {
		t.Fatalf("release %s is still there once its process ended", v1)
	}
}

// TestSSHSocketSwitchOnAFleet deploys examples/app to two hosts over SSH: each host starts the
// new process, ferry checks it through the SSH connection (a forwarded unix socket), and both
// hosts' app.sock move together; a rollback moves both back.
func TestSSHSocketSwitchOnAFleet(t *testing.T) {
	bin := exampleApp(t)
	f := newFleet(t, 2, "services:\n  - name: app\n    switch: socket\n    start: exec ./app\n    drain: 10s\n")
	for _, root := range f.roots {
		t.Cleanup(func() { killApps(t, root) })
	}
	os.RemoveAll(f.src)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	f.write("app", string(b))
	os.Chmod(filepath.Join(f.src, "app"), 0o755)
	f.appVersion("v1")
	v1 := f.mustDeployFleet()
	f.appVersion("v2")
	v2 := f.mustDeployFleet()
	for i, root := range f.roots {
		if got := getSocket(t, filepath.Join(root, "app.sock"), "/"); !strings.Contains(got, "v2") {
			t.Errorf("%s: app.sock serves %q, want v2", f.names[i], got)
		}
		waitFor(t, f.names[i]+"'s old process to drain", func() bool {
			apps := runningApps(root)
			return len(apps) == 1 && apps[0] == v2
		})
	}
	f.mustRollbackFleet()
	for i, root := range f.roots {
		if got := getSocket(t, filepath.Join(root, "app.sock"), "/healthz"); !strings.Contains(got, v1) {
			t.Errorf("%s: app.sock after the rollback answers %q, want %s", f.names[i], got, v1)
		}
	}
	f.checkAll()
}

// A server that refuses to forward unix sockets: a deploy fails before its swap with what to
// change, long before the readiness timeout.
func TestSSHSocketNoForwarding(t *testing.T) {
	bin := exampleApp(t)
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHDWith(t, client, webtest.SSHDOptions{Config: "AllowStreamLocalForwarding no"})
	client.Alias(t, "web1", srv)
	root := filepath.Join(t.TempDir(), "srv")
	s := newSite(t, fmt.Sprintf("hosts:\n  - ssh: web1\n    root: %s\nservices:\n  - name: app\n    switch: socket\n    start: exec ./app\n", root))
	s.root = root
	s.opts.SSH = sshOptions(client)
	// The new process is checked with the health URL's path, for as long as its timeout.
	s.cfg.Health = &config.Health{URL: "http://127.0.0.1/healthz", ExpectStatus: 200, Timeout: config.Duration(2 * time.Second), Interval: config.Duration(100 * time.Millisecond)}
	t.Cleanup(func() { killApps(t, root) })
	b, _ := os.ReadFile(bin)
	s.write("app", string(b))
	os.Chmod(filepath.Join(s.src, "app"), 0o755)
	_, err := s.deploy()
	var he *release.HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "AllowStreamLocalForwarding") {
		t.Fatalf("deploy: %v; want the refusal, with a hint", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "current")); err == nil {
		t.Errorf("current exists: the deploy was swapped")
	}
	if apps := runningApps(root); len(apps) != 0 {
		t.Errorf("processes left running: %v", apps)
	}
}

// 'ferry check' reports service commands that drop requests, and a stable link that points at
// no socket.
func TestCheckFindsServicesThatDropRequests(t *testing.T) {
	s := appSite(t, "exec ./app", "5s", "")
	s.appVersion("v1")
	id := s.mustDeploy()
	s.cfg.Services = append(s.cfg.Services,
		config.Service{Name: "php-fpm", Reload: "systemctl restart php8.2-fpm"},
		config.Service{Name: "pool", Restart: "systemctl restart php8.2-fpm", RestartAlways: true})
	killApps(t, s.root)
	waitFor(t, "the app to die", func() bool { return len(runningApps(s.root)) == 0 })
	os.Remove(filepath.Join(s.root, "run", "app."+id+".sock"))
	findings, err := Check(context.Background(), s.cfg, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range findings {
		got[f.Code] = true
	}
	want := []string{"reload-restarts", "php-fpm-restart", "socket-dangling", "socket-dead"}
	if conf, _ := filepath.Glob("/etc/php/*/fpm/php-fpm.conf"); len(conf) > 0 {
		want = append(want, "php-fpm-control-timeout") // Debian's default is 0
	}
	for _, code := range want {
		if !got[code] {
			t.Errorf("check did not report %s: %v", code, findings)
		}
	}
}

// groupAlive reports whether a process of process group pgid runs (not a zombie).
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// A rollback to a release whose old process still serves for a while after SIGTERM (and then
// removes its socket's path as it closes): the new process has a socket of its own, and the
// site answers once the old one is gone.
func TestSocketRollbackWhileOldDrains(t *testing.T) {
	s := appSite(t, "SHUTDOWN_DELAY=1s exec ./app", "10s", "")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	old, _ := procOf(filepath.Join(s.root, ".ferry", "proc", "app."+v1))
	s.appVersion("v2")
	s.mustDeploy()
	s.mustRollback("")
	waitFor(t, "v1's first process to exit", func() bool { return !groupAlive(old) })
	if got := getSocket(t, filepath.Join(s.root, "app.sock"), "/"); !strings.Contains(got, "v1") {
		t.Fatalf("app.sock after the old process left: %q", got)
	}
	waitOneApp(t, s)
}

// A start command that does not exec its server (sh stays its parent, and dies at SIGTERM
// while the server ignores it): ferry follows the process group, and kills the server after
// the drain.
func TestSocketStartWithoutExecIsAGroup(t *testing.T) {
	s := appSite(t, "APP_IGNORE_TERM=1 ./app; echo exited", "1s", "")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	pgid, _ := procOf(filepath.Join(s.root, ".ferry", "proc", "app."+v1))
	s.appVersion("v2")
	s.mustDeploy()
	waitFor(t, "v1's server to be killed", func() bool { return !groupAlive(pgid) })
	if _, err := os.Stat(filepath.Join(s.root, "releases", v1)); err != nil {
		t.Fatalf("release %s is gone: %v", v1, err)
	}
}

// A drain whose background process died (its run's connection dropped before it could start
// it) is finished by the next run: a process still there after its drain gets SIGKILL.
func TestSocketOrphanedDrainIsFinished(t *testing.T) {
	s := appSite(t, "APP_IGNORE_TERM=1 exec ./app", "1s", "")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	// As if a run had asked v1's process to stop a minute ago, and its drain had never run.
	file := filepath.Join(s.root, ".ferry", "proc", "app."+v1)
	pid, _ := procOf(file)
	stopping := fmt.Sprintf("%s.stopping.%d", file, pid)
	if err := os.Rename(file, stopping); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	os.Chtimes(stopping, past, past)
	s.appVersion("v2")
	s.mustDeploy()
	waitFor(t, "the process of the orphaned drain to be killed", func() bool { return !groupAlive(pid) })
	waitOneApp(t, s)
}

// A supervised service: ferry runs its start and stop commands ({{release}} in both), checks
// the socket, and stops the previous release's instance with stop.
func TestSocketSupervisedStartAndStop(t *testing.T) {
	s := appSite(t, `setsid ./app </dev/null >/dev/null 2>&1 & echo $! > "$FERRY_ROOT/../pid.{{release}}"`, "5s",
		`    stop: kill $(cat "$FERRY_ROOT/../pid.{{release}}") && echo "stopped {{release}}"`+"\n")
	dir := filepath.Dir(s.root)
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(dir, "pid.*"))
		for _, p := range pids {
			b, _ := os.ReadFile(p)
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	s.appVersion("v1")
	v1 := s.mustDeploy()
	s.appVersion("v2")
	v2 := s.mustDeploy()
	if got := getSocket(t, filepath.Join(s.root, "app.sock"), "/"); !strings.Contains(got, "v2") {
		t.Fatalf("app.sock: %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "pid."+v1))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "v1's instance to be stopped by the stop command", func() bool { return syscall.Kill(pid, 0) != nil })
	if log, _ := os.ReadFile(filepath.Join(s.root, "run", "app."+v1+".log")); !strings.Contains(string(log), "stopped "+v1) {
		t.Errorf("the stop command did not get its release: %q", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "pid."+v2)); err != nil {
		t.Fatal(err)
	}
}

// A socket service taken out of ferry.yaml: the next deploy stops its process, with a warning.
func TestSocketRemovedServiceIsStopped(t *testing.T) {
	s := appSite(t, "exec ./app", "5s", "")
	s.appVersion("v1")
	v1 := s.mustDeploy()
	pgid, _ := procOf(filepath.Join(s.root, ".ferry", "proc", "app."+v1))
	s.cfg.Services = nil
	s.mustDeploy()
	waitFor(t, "the process of the removed service to stop", func() bool { return !groupAlive(pgid) })
	if !s.rep.warned("service app is not in ferry.yaml") {
		t.Errorf("no warning about the removed service")
	}
}

// The first deploy with a socket service fails its health check: back on the previous release,
// which has no process, so app.sock is taken away and the new process stopped.
func TestSocketFirstSwitchFailsHealth(t *testing.T) {
	s := appSite(t, "exec ./app", "5s", "")
	services := s.cfg.Services
	s.cfg.Services = nil
	s.appVersion("v1")
	good := s.mustDeploy()
	s.cfg.Services = services
	s.cfg.Health = &config.Health{URL: "http://127.0.0.1:1/", ExpectStatus: 200, Timeout: config.Duration(500 * time.Millisecond), Interval: config.Duration(50 * time.Millisecond)}
	s.appVersion("v2")
	_, err := s.deploy()
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("deploy: %v, want rolled back", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "app.sock")); err == nil {
		t.Fatalf("app.sock is still there")
	}
	waitFor(t, "no process to run", func() bool { return len(runningApps(s.root)) == 0 })
}
