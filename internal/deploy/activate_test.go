package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/service"
)

// serveCurrent serves <root>/current/public over HTTP on loopback, resolving current on every
// request as nginx does with open_file_cache off.
func serveCurrent(t *testing.T, root string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(root, "current", "public"))))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestServicesReloadAfterEverySwapAndRestartWhenEnvChanged(t *testing.T) {
	s := newSite(t, `shared:
  files: [.env]
services:
  - name: app
    reload: echo "reload $FERRY_RELEASE in $(pwd -P)" >> "$FERRY_ROOT/../services.log"
    restart: echo "restart $FERRY_RELEASE" >> "$FERRY_ROOT/../services.log"
`)
	hostShared(t, s.root, ".env")
	log := filepath.Join(filepath.Dir(s.root), "services.log")
	a := s.mustDeploy()
	b := s.mustDeploy()
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("DB=new\n"), 0o600)
	c := s.mustDeploy()
	s.mustRollback("")
	got, _ := os.ReadFile(log)
	want := fmt.Sprintf("reload %[1]s in %[4]s/releases/%[1]s\nreload %[2]s in %[4]s/releases/%[2]s\nrestart %[3]s\nreload %[2]s in %[4]s/releases/%[2]s\n", a, b, c, s.root)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("services run (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(s.rep.kept, func(st Step) bool { return st.Kind == StepEnv && slices.Contains(st.Paths, ".env") }) {
		t.Errorf("ferry did not say why it restarted: %v", s.rep.steps)
	}
}

// A service with only restart restarts when a shared file changed, and is left alone
// otherwise; with restart_always it restarts after every swap.
func TestRestartOnlyServicesRestartWhenEnvChangedOrAlways(t *testing.T) {
	s := newSite(t, `shared:
  files: [.env]
services:
  - name: worker
    restart: echo "worker $FERRY_RELEASE" >> "$FERRY_ROOT/../services.log"
  - name: cron
    restart: echo "cron $FERRY_RELEASE" >> "$FERRY_ROOT/../services.log"
    restart_always: true
`)
	hostShared(t, s.root, ".env")
	log := filepath.Join(filepath.Dir(s.root), "services.log")
	a := s.mustDeploy()
	b := s.mustDeploy()
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("DB=new\n"), 0o600)
	c := s.mustDeploy()
	got, _ := os.ReadFile(log)
	want := fmt.Sprintf("cron %[1]s\ncron %[2]s\nworker %[3]s\ncron %[3]s\n", a, b, c)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("services run (-want +got):\n%s", diff)
	}
}

func TestFailingReloadSwapsBack(t *testing.T) {
	s := newSite(t, `services:
  - name: app
    reload: test ! -f broken || { echo "config test failed" >&2; exit 1; }
`)
	good := s.mustDeploy()
	s.write("broken", "")
	_, err := s.deploy()
	if err == nil || !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "config test failed") {
		t.Fatalf("err = %v, want a rolled-back reload failure with its output", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	s.check()
	if strings.Count(err.Error(), "config test failed") != 1 {
		t.Errorf("the old release's reload failed too: %v", err)
	}
	st, _ := Status(context.Background(), s.cfg, s.opts)
	if r := st[0].Releases[1]; !r.Bad {
		t.Fatalf("the release that failed to reload is not marked bad: %+v", r)
	}
}

func TestHealthCheckPassesAndFailureRollsBack(t *testing.T) {
	s := newSite(t, "")
	url := serveCurrent(t, s.root)
	s.cfg.Health = nil
	os.WriteFile(filepath.Join(s.src, "public/health"), []byte("ok"), 0o644)
	writeCfg := func(extra string) {
		t.Helper()
		p := filepath.Join(filepath.Dir(s.root), "ferry.yaml")
		yml := fmt.Sprintf("root: %s\nsource: ./build\nhooks:\n  before_activate:\n    - run: echo \"$FERRY_RELEASE $(cat public/health)\" > public/release.txt\nhealth:\n  url: %s/release.txt\n  contains: \"{{release}} ok\"\n  timeout: 2s\n  interval: 50ms\n%s", s.root, url, extra)
		os.WriteFile(p, []byte(yml), 0o644)
		cfg, err := loadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		s.cfg = cfg
	}
	writeCfg("")
	good := s.mustDeploy()
	if !slices.ContainsFunc(s.rep.kept, func(st Step) bool { return st.Kind == StepHealth && st.Status == 200 }) {
		t.Fatalf("no health step: %v", s.rep.steps)
	}
	s.write("public/health", "sick")
	_, err := s.deploy()
	var he *service.HealthError
	if !errors.As(err, &he) || !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want a health failure that was rolled back", err)
	}
	if !strings.Contains(err.Error(), "sick") {
		t.Errorf("the error does not show the last response: %v", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	s.check()
}

func TestAssetsOfThePreviousReleaseStayOneRelease(t *testing.T) {
	s := newSite(t, "assets: [public/build]\n")
	s.write("public/build/app-aaa.js", "a")
	s.mustDeploy()
	os.Remove(filepath.Join(s.src, "public/build/app-aaa.js"))
	s.write("public/build/app-bbb.js", "b")
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	s.check()
	if got := s.read("current/public/build/app-aaa.js"); got != "a" {
		t.Fatalf("old asset after one deploy = %q, want it carried over", got)
	}
	if res.Hosts[0].Stats.Carried != 1 {
		t.Fatalf("stats = %+v", res.Hosts[0].Stats)
	}
	os.Remove(filepath.Join(s.src, "public/build/app-bbb.js"))
	s.write("public/build/app-ccc.js", "c")
	s.mustDeploy()
	if _, err := os.Stat(filepath.Join(s.root, "current/public/build/app-aaa.js")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an asset two releases old is still there: %v", err)
	}
	if got := s.read("current/public/build/app-bbb.js"); got != "b" {
		t.Fatalf("previous asset = %q", got)
	}
}
