// Command zdd measures what a deploy breaks: the same keep-alive load (raw HTTP/1.1, no
// retries) against the same nginx while each tool deploys 30 times.
//
// The static-site table: the same 2,000-file site deployed by ferry, the article's script and a
// naive rm + ln deploy; it writes an SVG chart of errors per deploy per tool.
//
// The app-server table (-app, on by default): examples/app, built once, behind the same nginx
// server block (examples/app/nginx.conf), deployed by ferry three ways: its socket switch
// (nginx -> unix:<root>/app.sock), a stop/start restart (a plain service with restart_always
// whose restart stops the old process and starts the new one on a TCP port; nginx ->
// 127.0.0.1:port), and examples/app/handoff.sh (SO_REUSEPORT; nginx -> 127.0.0.1:port). Besides
// the load, a few loops request /slow?ms=1500 through nginx one after another; the table counts
// those not answered 200 (cut off by a deploy). With -migrate, the handoff runs a second time
// with the sysctl net.ipv4.tcp_migrate_req set to 1 (put back afterwards).
//
//	go run ./bench/zdd [-deploys 30] [-files 2000] [-conns 8] [-chart bench/zdd/errors.svg]
//	                   [-static=true] [-app=true] [-slow 2] [-app-chart bench/zdd/app-errors.svg] [-migrate]
//	                   [-app-bin path]
//
// Run it from the repository root as root (nginx's test workers run as root); it needs nginx
// and rsync (scripts/install-test-deps installs nginx; apt-get install rsync).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-deploy/ferry/internal/probe"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

var (
	markerRe = probe.ReleaseMarker
	assetRe  = probe.ScriptAsset
)

// prog runs the cleanups (nginx, app processes) on exit, and on a failure before it exits.
var prog = &webtest.Program{}

func fatalf(format string, args ...any) { prog.Fatalf(format, args...) }

// tool is one way of deploying, measured under the load.
type tool struct {
	name    string
	version func(v int) // writes version v into the build
	deploy  func() error
}

// load is what runs while a tool deploys.
type load struct {
	probe probe.Options
	// slowURL, when set, is requested by slowLoops loops, one request after another each.
	slowURL   string
	slowLoops int
}

type outcome struct {
	tool          string
	sum           probe.Summary
	slow, slowCut int      // slow requests made, and those not answered 200
	slowErrs      []string // the first few of those
	perDeploy     []int    // connection errors + non-2xx + broken page loads + slow cut, after each deploy began
	median        time.Duration
}

func main() {
	deploys := flag.Int("deploys", 30, "deploys per tool")
	files := flag.Int("files", 2000, "files in the static site")
	conns := flag.Int("conns", 8, "keep-alive connections of the load")
	chart := flag.String("chart", "bench/zdd/errors.svg", "where to write the static site's chart")
	static := flag.Bool("static", true, "measure the static site (ferry, the article's script, rm + ln)")
	app := flag.Bool("app", true, "measure the app server (socket switch, stop/start restart, SO_REUSEPORT handoff)")
	slow := flag.Int("slow", 2, "loops of /slow?ms=1500 requests during the app server's deploys")
	appChart := flag.String("app-chart", "bench/zdd/app-errors.svg", "where to write the app server's chart")
	migrate := flag.Bool("migrate", false, "also run the handoff with net.ipv4.tcp_migrate_req=1 (changes the sysctl for the run)")
	appBin := flag.String("app-bin", "", "an app server binary to measure instead of examples/app (it must serve as examples/app does)")
	flag.Parse()
	log.SetFlags(0)
	defer prog.Close()

	work := prog.TempDir()
	ferry := filepath.Join(work, "ferry")
	run("go", "build", "-o", ferry, "./cmd/ferry")
	if *static {
		staticTable(work, ferry, *deploys, *files, *conns, *chart)
	}
	if *app {
		if *static {
			fmt.Println()
		}
		appTable(work, ferry, *appBin, *deploys, *conns, *slow, *migrate, *appChart)
	}
}

// staticTable measures ferry, the article's script and a naive deploy of the static site.
func staticTable(work, ferry string, deploys, files, conns int, chart string) {
	root := filepath.Join(work, "srv")
	build := filepath.Join(work, "build")
	block, err := os.ReadFile("examples/static/nginx.conf")
	if err != nil {
		fatalf("%v", err)
	}
	ngx := webtest.StartNginx(prog, webtest.NginxOptions{ServerBlock: string(block), Root: root})
	makeSite(build, files)

	cfg := filepath.Join(work, "ferry.yaml")
	writeFile(cfg, fmt.Sprintf("root: %s\nsource: %s\nassets: [public/assets]\nshared:\n  dirs: [public/uploads]\n", root, build), 0o644)
	tools := []tool{
		{name: "ferry", deploy: func() error { return quiet(ferry, "-q", "-c", cfg, "deploy") }},
		{name: "article script", deploy: func() error {
			cmd := exec.Command("bench/article-deploy.sh", root, build)
			cmd.Env = append(os.Environ(), "RELOAD_CMD="+ngx.ReloadCommand())
			return cmd.Run()
		}},
		{name: "naive rm + ln", deploy: func() error { return quiet("bench/naive-deploy.sh", root, build) }},
	}
	var outcomes []outcome
	for _, t := range tools {
		t.version = func(v int) { setVersion(build, t.name, v) }
		os.RemoveAll(root)
		os.MkdirAll(filepath.Join(root, "releases"), 0o755)
		os.MkdirAll(filepath.Join(root, "shared", "uploads"), 0o755)
		writeFile(filepath.Join(root, "shared", ".env"), "APP=bench\n", 0o600)
		t.version(0)
		if err := t.deploy(); err != nil {
			fatalf("%s: first deploy: %v", t.name, err)
		}
		// The scripts name releases by the second: the next deploy must not get the same id.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		outcomes = append(outcomes, measure(t, load{probe: probe.Options{Addr: ngx.Addr, Path: "/", Conns: conns, Marker: markerRe, AssetRegexp: assetRe}}, deploys))
	}

	fmt.Printf("| tool | requests | non-2xx | connection errors | broken page loads | deploy time (median) |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
	for _, o := range outcomes {
		fmt.Printf("| %s | %d | %d | %d | %d | %s |\n", o.tool, o.sum.Requests, o.sum.Non2xx, o.sum.ConnErrors, o.sum.Broken, o.median.Round(time.Millisecond))
	}
	fmt.Printf("\n%d deploys per tool, %d files, %d keep-alive connections, one deploy a second; nginx %s\n", deploys, files, conns, nginxVersion(ngx.Bin))
	if err := writeChart(chart, "Failed requests per deploy (connection errors + non-2xx + broken page loads)", outcomes, deploys); err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("chart: %s\n", chart)
}

// restartScript is the stop/start restart of the app-server table, as `systemctl restart`
// does it: SIGTERM to the old process, wait until it has exited (its requests in flight
// finish), then start the new one. ferry's health check then waits until it answers.
const restartScript = `pidfile=$FERRY_ROOT/run/app.pid
mkdir -p "$FERRY_ROOT/run"
alive() { s=$(cat /proc/$1/stat 2>/dev/null) && s=${s##*) } && [ "${s%% *}" != Z ]; }
if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile")
	kill -TERM "$pid" 2>/dev/null
	i=0
	while alive "$pid"; do
		[ $i -lt 600 ] || { kill -KILL "$pid"; break; }
		sleep 0.05; i=$((i+1))
	done
fi
PORT=$PORT setsid ./app </dev/null >>"$FERRY_ROOT/run/app.log" 2>&1 &
echo $! >"$pidfile"
`

// appTable measures the app server deployed three ways.
func appTable(work, ferry, bin string, deploys, conns, slowLoops int, migrate bool, chart string) {
	what := bin
	if bin == "" {
		what, bin = "examples/app", filepath.Join(work, "appbin")
		run("go", "build", "-o", bin, "./examples/app")
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		fatalf("%v", err)
	}
	handoff, err := os.ReadFile("examples/app/handoff.sh")
	if err != nil {
		fatalf("%v", err)
	}
	block, err := os.ReadFile("examples/app/nginx.conf")
	if err != nil {
		fatalf("%v", err)
	}
	const exampleSock = "http://unix:/srv/www/app.example.com/app.sock:"
	if !strings.Contains(string(block), exampleSock) {
		fatalf("examples/app/nginx.conf no longer proxies to %s", exampleSock)
	}

	type variant struct {
		name     string
		services string // ferry.yaml's services, {{port}} the app's port
		socket   bool   // nginx -> the socket link; else 127.0.0.1:port
		sysctl   string // net.ipv4.tcp_migrate_req for the run, if set
	}
	variants := []variant{
		{name: "ferry socket switch", socket: true, services: "  - name: app\n    switch: socket\n    start: exec ./app\n    drain: 30s\n"},
		{name: "stop/start restart", services: "  - name: app\n    restart: PORT={{port}} sh restart.sh\n    restart_always: true\n"},
		{name: "SO_REUSEPORT handoff", services: "  - name: app\n    reload: PORT={{port}} sh handoff.sh\n"},
	}
	if migrate {
		variants = append(variants, variant{name: "handoff, tcp_migrate_req=1", services: variants[2].services, sysctl: "1"})
	}

	var outcomes []outcome
	var reasons [][]string
	var ngxBin string
	for i, v := range variants {
		dir := filepath.Join(work, fmt.Sprintf("app%d", i))
		root, build := filepath.Join(dir, "srv"), filepath.Join(dir, "build")
		prog.Cleanup(func() { killUnder(root) })
		port := portOf(webtest.FreePort(prog))
		sblock := strings.ReplaceAll(string(block), "/srv/www/app.example.com", root)
		if !v.socket {
			sblock = strings.ReplaceAll(string(block), exampleSock, "http://127.0.0.1:"+port)
		}
		ngx := webtest.StartNginx(prog, webtest.NginxOptions{ServerBlock: sblock, Root: root})
		ngxBin = ngx.Bin

		writeFile(filepath.Join(build, "app"), string(binData), 0o755)
		writeFile(filepath.Join(build, "handoff.sh"), string(handoff), 0o644)
		writeFile(filepath.Join(build, "restart.sh"), restartScript, 0o644)
		cfg := filepath.Join(dir, "ferry.yaml")
		writeFile(cfg, fmt.Sprintf("root: %s\nsource: %s\nservices:\n%s"+
			"health:\n  url: %s\n  contains: \"{{release}}\"\n  timeout: 30s\n  interval: 50ms\n",
			root, build, strings.ReplaceAll(v.services, "{{port}}", port), ngx.URL("/healthz")), 0o644)
		t := tool{
			name:    v.name,
			version: func(n int) { writeFile(filepath.Join(build, "VERSION"), fmt.Sprintf("v%d\n", n), 0o644) },
			deploy:  func() error { return quiet(ferry, "-q", "-c", cfg, "deploy") },
		}
		restore := func() {}
		if v.sysctl != "" {
			restore = setSysctl("net/ipv4/tcp_migrate_req", v.sysctl)
			prog.Cleanup(restore)
		}
		t.version(0)
		if err := t.deploy(); err != nil {
			fatalf("%s: first deploy: %v", t.name, err)
		}
		outcomes = append(outcomes, measure(t, load{
			probe:   probe.Options{Addr: ngx.Addr, Path: "/", Conns: conns, Marker: markerRe},
			slowURL: ngx.URL("/slow?ms=1500"), slowLoops: slowLoops,
		}, deploys))
		killUnder(root)
		restore()
		reasons = append(reasons, upstreamErrors(filepath.Join(ngx.Prefix, "error.log")))
	}

	fmt.Printf("| app server | requests | non-2xx | connection errors | slow requests cut off | deploy time (median) |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
	for _, o := range outcomes {
		fmt.Printf("| %s | %d | %d | %d | %d of %d | %s |\n", o.tool, o.sum.Requests, o.sum.Non2xx, o.sum.ConnErrors, o.slowCut, o.slow, o.median.Round(time.Millisecond))
	}
	fmt.Printf("\n%s behind examples/app/nginx.conf, %d deploys per tool, at most one a second, %d keep-alive connections, %d loops of /slow?ms=1500\n"+
		"(each at most one request every 1.5 s); health check through nginx every 50 ms; net.ipv4.tcp_migrate_req=%s unless the row says\n"+
		"otherwise; nginx %s. Why nginx answered 502, from its error log:\n",
		what, deploys, conns, slowLoops, readSysctl("net/ipv4/tcp_migrate_req"), nginxVersion(ngxBin))
	for i, o := range outcomes {
		why := strings.Join(reasons[i], "; ")
		if why == "" {
			why = "no upstream errors"
		}
		fmt.Printf("- %s: %s\n", o.tool, why)
	}
	if err := writeChart(chart, "Failed requests per deploy (connection errors + non-2xx + slow requests cut off)", outcomes, deploys); err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("chart: %s\n", chart)
}

// measure runs the load while t deploys n times, at most one deploy a second (the article's
// ids have one-second resolution; every tool gets the same pace).
func measure(t tool, l load, n int) outcome {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() { done <- probe.Run(ctx, l.probe) }()
	slowDone := make(chan []slowResult)
	go func() { slowDone <- slowLoad(ctx, l.slowURL, l.slowLoops) }()
	time.Sleep(500 * time.Millisecond) // warm-up load before the first deploy
	starts := make([]time.Time, n)
	var took []time.Duration
	for i := range n {
		next := time.Now().Add(time.Second)
		t.version(i + 1)
		starts[i] = time.Now()
		if err := t.deploy(); err != nil {
			cancel()
			fatalf("%s: deploy %d: %v", t.name, i+1, err)
		}
		took = append(took, time.Since(starts[i]))
		time.Sleep(time.Until(next))
	}
	cancel()
	results, slows := <-done, <-slowDone
	o := outcome{tool: t.name, sum: probe.Summarize(results), perDeploy: make([]int, n)}
	count := func(start time.Time) {
		if i := sort.Search(n, func(i int) bool { return starts[i].After(start) }) - 1; i >= 0 {
			o.perDeploy[i]++
		}
	}
	for _, r := range results {
		if r.Err != "" || r.Status < 200 || r.Status > 299 || r.Broken {
			count(r.Start)
		}
	}
	for _, r := range slows {
		o.slow++
		if r.status != http.StatusOK {
			o.slowCut++
			count(r.start)
			if len(o.slowErrs) < 5 {
				o.slowErrs = append(o.slowErrs, r.err)
			}
		}
	}
	slices.Sort(took)
	o.median = took[len(took)/2]
	return o
}

type slowResult struct {
	start  time.Time
	status int
	err    string
}

// slowLoad requests url in loops loops, one request after another each, each on a new
// connection and never retried, until ctx ends; a request cut by the end of the run is left
// out.
func slowLoad(ctx context.Context, url string, loops int) []slowResult {
	if url == "" {
		return nil
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var out []slowResult
	var wg sync.WaitGroup
	for i := range loops {
		wg.Go(func() {
			// Stagger the loops, so that a deploy finds a slow request at every stage.
			time.Sleep(time.Duration(i) * 1500 * time.Millisecond / time.Duration(loops))
			for ctx.Err() == nil {
				r := slowResult{start: time.Now()}
				// At most one request a slot of 1.5 s: a loop that fails at once (502 while
				// nothing listens) is not counted again and again for one outage.
				next := r.start.Add(1500 * time.Millisecond)
				resp, err := client.Get(url)
				if err != nil {
					r.err = err.Error()
				} else {
					r.status = resp.StatusCode
					if r.status != http.StatusOK {
						r.err = resp.Status
					}
					resp.Body.Close()
				}
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(time.Until(next)):
				}
			}
		})
	}
	wg.Wait()
	return out
}

// killUnder kills, by pid, every process whose working directory is in root (the app
// processes a tool started), and waits until they are gone.
func killUnder(root string) {
	under := func() []int {
		var pids []int
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			cwd, err := os.Readlink(d + "/cwd")
			if err != nil || (cwd != root && !strings.HasPrefix(cwd, root+"/")) {
				continue
			}
			var pid int
			fmt.Sscan(filepath.Base(d), &pid)
			pids = append(pids, pid)
		}
		return pids
	}
	for _, pid := range under() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(under()) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// upstreamErrors counts the errors in nginx's error log by their message, without the
// connection's number, the upstream's address and the request: "3× connect() failed (111:
// Connection refused) while connecting to upstream".
func upstreamErrors(path string) []string {
	b, _ := os.ReadFile(path)
	count := map[string]int{}
	re := regexp.MustCompile(`\[(?:error|crit)\] \d+#\d+: \*\d+ (.*?)(?:, client: .*)?$`)
	for line := range strings.Lines(string(b)) {
		if m := re.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			msg := regexp.MustCompile(`connect\(\) to \S+ failed`).ReplaceAllString(m[1], "connect() failed")
			count[msg]++
		}
	}
	var out []string
	for msg, n := range count {
		out = append(out, fmt.Sprintf("%d× %s", n, msg))
	}
	slices.Sort(out)
	return out
}

// setSysctl sets /proc/sys/<name> and returns what puts the old value back.
func setSysctl(name, value string) func() {
	old := readSysctl(name)
	if old == "" {
		fatalf("%s: not available on this kernel", name)
	}
	writeFile("/proc/sys/"+name, value, 0o644)
	return func() { os.WriteFile("/proc/sys/"+name, []byte(old), 0o644) }
}

func readSysctl(name string) string {
	b, _ := os.ReadFile("/proc/sys/" + name)
	return strings.TrimSpace(string(b))
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// makeSite writes a site of files files: many small assets and an index page.
func makeSite(dir string, files int) {
	for i := range files {
		p := filepath.Join(dir, "public", "static", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.js", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, fmt.Appendf(nil, "/* %d */ console.log(%d);\n%s", i, i, make([]byte, 500+i%3000)), 0o644)
	}
}

// setVersion writes the index page of version v and its fingerprinted asset, removing the last.
func setVersion(dir, tool string, v int) {
	name := fmt.Sprintf("app-%x.js", []byte(fmt.Sprintf("%s-%d", tool, v)))
	os.RemoveAll(filepath.Join(dir, "public", "assets"))
	os.MkdirAll(filepath.Join(dir, "public", "assets"), 0o755)
	os.WriteFile(filepath.Join(dir, "public", "assets", name), fmt.Appendf(nil, "console.log(%d)\n", v), 0o644)
	os.WriteFile(filepath.Join(dir, "public", "index.html"), fmt.Appendf(nil,
		"<!doctype html>\n<meta name=\"release\" content=\"v%d\">\n<script src=\"/assets/%s\"></script>\n", v, name), 0o644)
}

func writeFile(p, content string, mode os.FileMode) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		fatalf("%v", err)
	}
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fatalf("%s: %v", name, err)
	}
}

func quiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

func nginxVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	if m := regexp.MustCompile(`nginx/(\S+)`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "?"
}
