package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/probe"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

var (
	markerRe = probe.ReleaseMarker
	assetRe  = probe.ScriptAsset
)

// op is a deploy or rollback as the load saw it: the version current shows after it.
type op struct {
	start, end time.Time
	version    string
	rollback   bool
}

// checkFresh asserts that every response shows a version that was live at some instant of its
// request: the one of the last operation that ended before it started, or of one that overlapped it.
func checkFresh(t *testing.T, results []probe.Result, ops []op, initial string) {
	t.Helper()
	stale := 0
	for _, r := range results {
		if r.Err != "" || r.Marker == "" {
			continue
		}
		allowed := map[string]bool{}
		before := initial
		for _, o := range ops {
			if o.end.Before(r.Start) {
				before = o.version
			} else if o.start.Before(r.End) {
				allowed[o.version] = true // overlapping: either side of the swap is right
			}
		}
		allowed[before] = true
		if !allowed[r.Marker] {
			if stale < 5 {
				t.Errorf("request at %s showed %s; live then: %v", r.Start.Format("15:04:05.000"), r.Marker, allowed)
			}
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d responses showed a release that was not live", stale)
	}
}

// deployUnderLoad runs 50 deploys of versions v1…v50 (written by version) and a rollback after
// every fifth, under the load o, and returns what the load saw and when each operation ran.
func deployUnderLoad(s *site, o probe.Options, version func(string)) ([]probe.Result, []op) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() { done <- probe.Run(ctx, o) }()
	var ops []op
	prev := "v0"
	for i := 1; i <= 50; i++ {
		v := fmt.Sprintf("v%d", i)
		version(v)
		start := time.Now()
		s.mustDeploy()
		ops = append(ops, op{start, time.Now(), v, false})
		if i%5 == 0 {
			start := time.Now()
			s.mustRollback("")
			ops = append(ops, op{start, time.Now(), prev, true})
			v = prev
		}
		prev = v
	}
	cancel()
	return <-done, ops
}

// staticSite is examples/static with a version marker and a fingerprinted asset per version.
func staticSite(t *testing.T) *site {
	s := newSite(t, "assets: [public/assets]\nshared:\n  dirs: [public/uploads]\n")
	os.RemoveAll(s.src)
	return s
}

func (s *site) writeVersion(v string) {
	s.t.Helper()
	os.RemoveAll(filepath.Join(s.src, "public/assets"))
	s.write("public/assets/app-"+v+".js", "console.log('"+v+"')\n")
	s.write("public/index.html", fmt.Sprintf("<!doctype html>\n<meta name=\"release\" content=\"%s\">\n<script src=\"/assets/app-%s.js\"></script>\n", v, v))
}

func readServerBlock(t *testing.T, example string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", example, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNoRequestFailsDuringDeploysBehindNginx runs 50 deploys and 10 rollbacks of the static
// example behind a real nginx with its recommended config (examples/static/nginx.conf, no
// reload), under a keep-alive load without retries.
func TestNoRequestFailsDuringDeploysBehindNginx(t *testing.T) {
	s := staticSite(t)
	s.writeVersion("v0")
	s.mustDeploy()
	ngx := webtest.StartNginx(t, webtest.NginxOptions{ServerBlock: readServerBlock(t, "static"), Root: s.root})

	results, ops := deployUnderLoad(s, probe.Options{Addr: ngx.Addr, Path: "/", Conns: 4, Marker: markerRe, AssetRegexp: assetRe}, s.writeVersion)
	sum := probe.Summarize(results)
	t.Logf("%s during 50 deploys and 10 rollbacks", sum)
	if sum.Non2xx != 0 || sum.ConnErrors != 0 {
		t.Fatalf("%s; first: %v", sum, sum.FirstErrors)
	}
	// A deploy carries the previous release's assets, so a page loaded just before it still
	// loads its script just after. A rollback goes back to a release that never had the newer
	// assets: a page of the abandoned release, loaded across the rollback, may break.
	// Assets are kept for one release: a page load that spans two deploys (they come every few
	// milliseconds here) may break as well.
	for _, r := range results {
		if !r.Broken {
			continue
		}
		overlapping := 0
		for _, o := range ops {
			if o.start.Before(r.End) && o.end.After(r.Start) {
				overlapping++
				if o.rollback {
					overlapping = 2
				}
			}
		}
		if overlapping < 2 {
			t.Fatalf("a page load across one deploy broke: page %s at %s", r.Marker, r.Start.Format("15:04:05.000"))
		}
	}
	if sum.Requests < 1000 {
		t.Fatalf("only %d requests: the load proves nothing", sum.Requests)
	}
	checkFresh(t, results, ops, "v0")
}

// TestOldPageAssetLoadsAfterTheSwap: a page served just before a deploy references an asset the
// new build no longer has; fetched after the swap, it still answers 200.
func TestOldPageAssetLoadsAfterTheSwap(t *testing.T) {
	s := staticSite(t)
	s.writeVersion("v1")
	s.mustDeploy()
	ngx := webtest.StartNginx(t, webtest.NginxOptions{ServerBlock: readServerBlock(t, "static"), Root: s.root})
	page := get(t, ngx.URL("/"))
	asset := assetRe.FindStringSubmatch(page)[1]
	s.writeVersion("v2")
	s.mustDeploy()
	if got := get(t, ngx.URL("/")); !strings.Contains(got, "v2") {
		t.Fatalf("page after deploy: %q", got)
	}
	resp, err := http.Get(ngx.URL(asset))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("old page's asset %s after the swap: HTTP %d", asset, resp.StatusCode)
	}
}

// TestFailedHealthCheckKeepsTheSiteUp: the health check of a bad release fails; ferry rolls back,
// the site answers 200 throughout, and current ends on the old release.
func TestFailedHealthCheckKeepsTheSiteUp(t *testing.T) {
	s := staticSite(t)
	s.writeVersion("v1")
	s.mustDeploy()
	good := s.current()
	ngx := webtest.StartNginx(t, webtest.NginxOptions{ServerBlock: readServerBlock(t, "static"), Root: s.root})
	s.cfg.Health = &config.Health{URL: ngx.URL("/"), ExpectStatus: 200, Contains: "healthy {{release}}",
		Timeout: config.Duration(time.Second), Interval: config.Duration(50 * time.Millisecond)}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() { done <- probe.Run(ctx, probe.Options{Addr: ngx.Addr, Path: "/", Conns: 2, Marker: markerRe}) }()
	s.writeVersion("v2")
	_, err := s.deploy()
	returned := time.Now()
	time.Sleep(100 * time.Millisecond) // let the load see the site after the rollback
	cancel()
	results := <-done
	if err == nil || !strings.Contains(err.Error(), "last response: HTTP 200") {
		t.Fatalf("err = %v, want a failed health check showing the last response", err)
	}
	if s.current() != good {
		t.Fatalf("current = %s, want %s", s.current(), good)
	}
	sum := probe.Summarize(results)
	if sum.Non2xx != 0 || sum.ConnErrors != 0 {
		t.Fatalf("%s; first: %v", sum, sum.FirstErrors)
	}
	for _, r := range results {
		if r.Start.After(returned) && r.Marker != "v1" {
			t.Fatalf("after the rollback the site showed %s", r.Marker)
		}
	}
}

// TestPHPFPMServesNewCodeRightAfterEachDeploy deploys examples/php 20 times behind nginx and
// PHP-FPM with the example's config: each deploy's code answers as soon as ferry returns, the
// migration hook's database in shared/ grows, and no request fails.
func TestPHPFPMServesNewCodeRightAfterEachDeploy(t *testing.T) {
	cfg, src, ngx, _ := phpSite(t, nil)
	rep := &recorder{}
	deployVersion := func(n int) string {
		t.Helper()
		os.WriteFile(filepath.Join(src, "version.php"), fmt.Appendf(nil, "<?php\nreturn 'version %d';\n", n), 0o644)
		res, err := Deploy(context.Background(), cfg, DeployOptions{}, rep)
		if err != nil {
			t.Fatalf("deploy: %v\n%s", err, rep.output.String())
		}
		return res.Release
	}
	deployVersion(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() { done <- probe.Run(ctx, probe.Options{Addr: ngx.Addr, Path: "/", Conns: 4, Marker: markerRe}) }()
	for n := 1; n <= 20; n++ {
		id := deployVersion(n)
		page := get(t, ngx.URL("/"))
		if !strings.Contains(page, fmt.Sprintf("Hello from version %d<", n)) || !strings.Contains(page, id) {
			t.Fatalf("right after deploy %d (%s) the page is:\n%s", n, id, page)
		}
		if !strings.Contains(page, fmt.Sprintf("%d migration runs", n+1)) {
			t.Fatalf("the migration database in shared/ did not keep its rows:\n%s", page)
		}
	}
	cancel()
	sum := probe.Summarize(<-done)
	t.Logf("%s during 20 PHP deploys", sum)
	if sum.Non2xx != 0 || sum.ConnErrors != 0 {
		t.Fatalf("%s; first: %v", sum, sum.FirstErrors)
	}
}

// TestPHPFPMGracefulReloadDropsNothing deploys examples/php 20 times with PHP-FPM reloaded
// after each swap by SIGUSR2 (systemctl reload), the form the example and 'ferry check'
// recommend, under load: no request fails.
func TestPHPFPMGracefulReloadDropsNothing(t *testing.T) {
	cfg, src, ngx, _ := phpSite(t, func(fpm *webtest.PHPFPM) string {
		return fmt.Sprintf("services:\n  - name: php-fpm\n    reload: %s\n", fpm.ReloadCommand())
	})
	rep := &recorder{}
	if _, err := Deploy(context.Background(), cfg, DeployOptions{}, rep); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() { done <- probe.Run(ctx, probe.Options{Addr: ngx.Addr, Path: "/", Conns: 4, Marker: markerRe}) }()
	for n := 1; n <= 20; n++ {
		os.WriteFile(filepath.Join(src, "version.php"), fmt.Appendf(nil, "<?php\nreturn 'version %d';\n", n), 0o644)
		if _, err := Deploy(context.Background(), cfg, DeployOptions{}, rep); err != nil {
			t.Fatalf("deploy %d: %v", n, err)
		}
	}
	cancel()
	sum := probe.Summarize(<-done)
	t.Logf("%s during 20 PHP deploys with a reload (SIGUSR2) each", sum)
	if sum.Non2xx != 0 || sum.ConnErrors != 0 {
		t.Fatalf("%s; first: %v", sum, sum.FirstErrors)
	}
	if n := len(slices.DeleteFunc(slices.Clone(rep.kept), func(st Step) bool { return st.Kind != "reload" || st.Service != "php-fpm" })); n < 20 {
		t.Fatalf("PHP-FPM was reloaded %d times, want 20", n)
	}
}

// phpSite is examples/php copied into a test directory, behind a real nginx and PHP-FPM, with
// its ferry.yaml pointed at them and extended by extra (given the PHP-FPM), and shared/.env made
// on the host as the example asks.
func phpSite(t *testing.T, extra func(*webtest.PHPFPM) string) (*config.Config, string, *webtest.Nginx, *webtest.PHPFPM) {
	t.Helper()
	fpm := webtest.StartPHPFPM(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "srv")
	src := filepath.Join(dir, "app")
	if err := os.CopyFS(src, os.DirFS(filepath.Join("..", "..", "examples", "php"))); err != nil {
		t.Fatal(err)
	}
	ngx := webtest.StartNginx(t, webtest.NginxOptions{ServerBlock: readServerBlock(t, "php"), Root: root, PHPFPM: fpm.Addr})
	hostShared(t, root, ".env") // as the example says: created on the host before the first deploy
	yml, _ := os.ReadFile(filepath.Join(src, "ferry.yaml"))
	text := strings.ReplaceAll(string(yml), "/srv/www/example.com", root)
	text = strings.ReplaceAll(text, "http://127.0.0.1/healthz.php", ngx.URL("/healthz.php"))
	if extra != nil {
		text += extra(fpm)
	}
	os.WriteFile(filepath.Join(src, "ferry.yaml"), []byte(text), 0o644)
	cfg, err := config.Load(filepath.Join(src, "ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, src, ngx, fpm
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d\n%s", url, resp.StatusCode, b)
	}
	return string(b)
}
