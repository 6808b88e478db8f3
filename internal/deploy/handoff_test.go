package deploy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/probe"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// handoffSite is examples/app deployed with a plain service (no switch: socket) whose reload is
// examples/app/handoff.sh on a free loopback port, run by shell ("sh", or a BusyBox sh).
// extraEnv goes before the command (HANDOFF_READY_TIMEOUT=2). It returns the site and the port.
func handoffSite(t *testing.T, shell, extraEnv string) (*site, string) {
	t.Helper()
	bin := exampleApp(t)
	_, port, _ := net.SplitHostPort(webtest.FreePort(t))
	reload := strings.TrimSpace(fmt.Sprintf("PORT=%s %s %s handoff.sh", port, extraEnv, shell))
	s := newSite(t, fmt.Sprintf("services:\n  - name: app\n    reload: %q\n", reload))
	t.Cleanup(func() { killHandoffApps(t, s.root) })
	os.RemoveAll(s.src)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	s.write("app", string(b))
	if err := os.Chmod(filepath.Join(s.src, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("..", "..", "examples", "app", "handoff.sh"))
	if err != nil {
		t.Fatal(err)
	}
	s.write("handoff.sh", string(script))
	return s, port
}

// busyboxShell returns a command that runs a script in BusyBox's sh with only BusyBox's
// applets on PATH, as on a BusyBox host.
func busyboxShell(t *testing.T) string {
	t.Helper()
	bin := webtest.Need(t, "busybox", "/bin/busybox", "/usr/bin/busybox")
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "busybox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if !strings.Contains(a, "/") {
			os.Symlink(bin, filepath.Join(dir, a))
		}
	}
	return fmt.Sprintf("PATH=%s %s/sh", dir, dir)
}

// handoffApps lists the live processes (not zombies) whose working directory is a release of
// root: the app processes handoff.sh started, once no deploy runs.
func handoffApps(root string) []int {
	prefix := filepath.Join(root, "releases") + "/"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		cwd, err := os.Readlink(d + "/cwd")
		if err != nil || !strings.HasPrefix(cwd, prefix) {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" {
			pid, _ := strconv.Atoi(filepath.Base(d))
			out = append(out, pid)
		}
	}
	return out
}

// killHandoffApps kills, by pid, every process running in a release of root.
func killHandoffApps(t *testing.T, root string) {
	for _, pid := range handoffApps(root) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(handoffApps(root)) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if left := handoffApps(root); len(left) > 0 {
		t.Errorf("processes still running in %s: %v", root, left)
	}
}

// getPort fetches path from 127.0.0.1:port on a new connection.
func getPort(t *testing.T, port, path string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + port + path)
	if err != nil {
		t.Fatalf("GET %s on port %s: %v", path, port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkHandoff asserts what a user checks after a deploy: the port answers with release id
// (version v) on every new connection, and one app process runs, the one in the pid file.
func checkHandoff(t *testing.T, s *site, port, id, v string) {
	t.Helper()
	for range 20 {
		status, body := getPort(t, port, "/")
		if status != 200 || !strings.Contains(body, `content="`+v+`"`) || !strings.Contains(body, "release "+id+" ") {
			t.Fatalf("port %s answers %d %q, want release %s (%s)", port, status, body, id, v)
		}
	}
	apps := handoffApps(s.root)
	if len(apps) != 1 {
		t.Fatalf("%d app processes run (%v), want 1", len(apps), apps)
	}
	list := strings.Fields(s.read("run/app.pid"))
	if len(list) != 2 || list[0] != strconv.Itoa(apps[0]) {
		t.Fatalf("run/app.pid says %q, want the one process that runs (%d) alone", list, apps[0])
	}
}

// TestHandoffReplacesTheAppOnItsPort deploys examples/app four times and rolls back once, with
// handoff.sh as the service's reload, in dash and in BusyBox's sh. After each, the port
// answers with the new release and one process runs; a slow request the old process was
// serving finishes with 200 from the old release; under load straight on the port no
// connection is ever refused.
func TestHandoffReplacesTheAppOnItsPort(t *testing.T) {
	for _, tc := range []struct{ name, shell string }{{"sh", "sh"}, {"busybox", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			shell := tc.shell
			if shell == "" {
				shell = busyboxShell(t)
			}
			s, port := handoffSite(t, shell, "")
			s.appVersion("v1")
			ids := []string{s.mustDeploy()}
			checkHandoff(t, s, port, ids[0], "v1")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan []probe.Result)
			go func() {
				done <- probe.Run(ctx, probe.Options{Addr: "127.0.0.1:" + port, Path: "/", Conns: 4, Marker: markerRe})
			}()

			// A slow request on the old process across the next deploy.
			type answer struct {
				status int
				body   string
			}
			slow := make(chan answer, 1)
			go func() {
				c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
				resp, err := c.Get("http://127.0.0.1:" + port + "/slow?ms=1500")
				if err != nil {
					slow <- answer{body: err.Error()}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				slow <- answer{resp.StatusCode, string(b)}
			}()
			waitFor(t, "the slow request to reach the old process", func() bool {
				b, _ := os.ReadFile(filepath.Join(s.root, "run", "app."+ids[0]+".log"))
				return strings.Contains(string(b), "slow request")
			})

			for i := 2; i <= 4; i++ {
				v := fmt.Sprintf("v%d", i)
				s.appVersion(v)
				ids = append(ids, s.mustDeploy())
				checkHandoff(t, s, port, ids[len(ids)-1], v)
				if i == 2 {
					if a := <-slow; a.status != 200 || !strings.Contains(a.body, `content="v1"`) {
						t.Fatalf("slow request across the handoff: %d %q, want 200 from v1", a.status, a.body)
					}
				}
			}
			s.mustRollback("")
			checkHandoff(t, s, port, ids[2], "v3")
			cancel()
			results := <-done
			sum := probe.Summarize(results)
			refused := 0
			for _, r := range results {
				if strings.Contains(r.Err, "refused") {
					refused++
				}
			}
			// Straight on the port, the app closes idle keep-alive connections at SIGTERM, and
			// a connection queued on the old listener as it closes is reset: those are counted,
			// not failed. A refused connection would mean the port stopped listening.
			t.Logf("straight on the port during 3 deploys and a rollback: %s (%d refused); first errors: %v", sum, refused, sum.FirstErrors)
			if refused > 0 || sum.Non2xx > 0 {
				t.Fatalf("%d connections refused, %d non-2xx: the port stopped listening", refused, sum.Non2xx)
			}
			if sum.Requests < 100 {
				t.Fatalf("only %d requests: the load proves nothing", sum.Requests)
			}
		})
	}
}

// TestHandoffReleaseThatDoesNotListenKeepsTheOldOne: a release whose process exits at once, and
// one whose process never listens, each fail the deploy with the process's output; ferry swaps
// current back and runs handoff.sh again in the previous release, which serves on; no process
// of the failed release is left.
func TestHandoffReleaseThatDoesNotListenKeepsTheOldOne(t *testing.T) {
	s, port := handoffSite(t, "sh", "HANDOFF_READY_TIMEOUT=2")
	s.appVersion("v1")
	good := s.mustDeploy()
	checkHandoff(t, s, port, good, "v1")
	bin, err := os.ReadFile(filepath.Join(s.src, "app"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, app, want string }{
		{"exits", "#!/bin/sh\necho 'FATAL: cannot open storage/app.db' >&2\nexit 3\n", "exited before it listened"},
		{"never listens", "#!/bin/sh\necho 'waiting for a database that never comes'\nexec sleep 600\n", "did not listen on port " + port + " within 2s"},
	} {
		s.write("app", tc.app)
		os.Chmod(filepath.Join(s.src, "app"), 0o755)
		s.appVersion("v2")
		_, err := s.deploy()
		if err == nil {
			t.Fatalf("%s: the deploy succeeded", tc.name)
		}
		for _, want := range []string{tc.want, strings.SplitN(tc.app, "'", 3)[1], "rolled back"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error does not say %q: %v", tc.name, want, err)
			}
		}
		if s.current() != good {
			t.Fatalf("%s: current = %s, want %s", tc.name, s.current(), good)
		}
		checkHandoff(t, s, port, good, "v1")
	}
	s.write("app", string(bin))
	s.appVersion("v3")
	id := s.mustDeploy()
	checkHandoff(t, s, port, id, "v3")
}
