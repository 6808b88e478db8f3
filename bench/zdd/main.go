// Command zdd measures what a deploy breaks: the same keep-alive load (raw HTTP/1.1, no
// retries) against the same nginx and site while ferry, the article's script and a naive
// rm + ln deploy each deploy 30 times. It prints a table and writes an SVG chart of errors per
// deploy per tool.
//
//	go run ./bench/zdd [-deploys 30] [-files 2000] [-conns 8] [-chart bench/zdd/errors.svg]
//
// Run it from the repository root as root (nginx's test workers run as root); it needs nginx
// and rsync (scripts/install-test-deps installs nginx; apt-get install rsync).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/ferry-deploy/ferry/internal/probe"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

var (
	markerRe = probe.ReleaseMarker
	assetRe  = probe.ScriptAsset
)

type tool struct {
	name   string
	deploy func(i int) error
}

type outcome struct {
	tool      string
	sum       probe.Summary
	perDeploy []int // connection errors + non-2xx + broken page loads after each deploy began
	median    time.Duration
}

func main() {
	deploys := flag.Int("deploys", 30, "deploys per tool")
	files := flag.Int("files", 2000, "files in the site")
	conns := flag.Int("conns", 8, "keep-alive connections of the load")
	chart := flag.String("chart", "bench/zdd/errors.svg", "where to write the chart")
	flag.Parse()
	log.SetFlags(0)

	env := &webtest.Program{}
	defer env.Close()
	work := env.TempDir()
	root := filepath.Join(work, "srv")
	build := filepath.Join(work, "build")
	ferry := filepath.Join(work, "ferry")
	run("go", "build", "-o", ferry, "./cmd/ferry")
	block, err := os.ReadFile("examples/static/nginx.conf")
	if err != nil {
		log.Fatal(err)
	}
	ngx := webtest.StartNginx(env, webtest.NginxOptions{ServerBlock: string(block), Root: root})
	makeSite(build, *files)

	cfg := filepath.Join(work, "ferry.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "root: %s\nsource: %s\nassets: [public/assets]\nshared:\n  dirs: [public/uploads]\n", root, build), 0o644)
	tools := []tool{
		{"ferry", func(int) error { return quiet(ferry, "-q", "-c", cfg, "deploy") }},
		{"article script", func(int) error {
			cmd := exec.Command("bench/article-deploy.sh", root, build)
			cmd.Env = append(os.Environ(), "RELOAD_CMD="+ngx.ReloadCommand())
			return cmd.Run()
		}},
		{"naive rm + ln", func(int) error { return quiet("bench/naive-deploy.sh", root, build) }},
	}
	var outcomes []outcome
	for _, t := range tools {
		os.RemoveAll(root)
		os.MkdirAll(filepath.Join(root, "releases"), 0o755)
		os.MkdirAll(filepath.Join(root, "shared", "uploads"), 0o755)
		os.WriteFile(filepath.Join(root, "shared", ".env"), []byte("APP=bench\n"), 0o600)
		setVersion(build, t.name, 0)
		if err := t.deploy(0); err != nil {
			log.Fatalf("%s: first deploy: %v", t.name, err)
		}
		outcomes = append(outcomes, measure(t, ngx.Addr, build, *deploys, *conns))
	}

	fmt.Printf("| tool | requests | non-2xx | connection errors | broken page loads | deploy time (median) |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
	for _, o := range outcomes {
		fmt.Printf("| %s | %d | %d | %d | %d | %s |\n", o.tool, o.sum.Requests, o.sum.Non2xx, o.sum.ConnErrors, o.sum.Broken, o.median.Round(time.Millisecond))
	}
	fmt.Printf("\n%d deploys per tool, %d files, %d keep-alive connections, one deploy a second; nginx %s\n", *deploys, *files, *conns, nginxVersion(ngx.Bin))
	if err := writeChart(*chart, outcomes, *deploys); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("chart: %s\n", *chart)
}

// measure runs the load while t deploys n times, one deploy a second (the article's ids have
// one-second resolution; every tool gets the same pace).
func measure(t tool, addr, build string, n, conns int) outcome {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []probe.Result)
	go func() {
		done <- probe.Run(ctx, probe.Options{Addr: addr, Path: "/", Conns: conns, Marker: markerRe, AssetRegexp: assetRe})
	}()
	time.Sleep(500 * time.Millisecond) // warm-up load before the first deploy
	starts := make([]time.Time, n)
	var took []time.Duration
	for i := range n {
		next := time.Now().Add(time.Second)
		setVersion(build, t.name, i+1)
		starts[i] = time.Now()
		if err := t.deploy(i + 1); err != nil {
			log.Fatalf("%s: deploy %d: %v", t.name, i+1, err)
		}
		took = append(took, time.Since(starts[i]))
		time.Sleep(time.Until(next))
	}
	cancel()
	results := <-done
	o := outcome{tool: t.name, sum: probe.Summarize(results), perDeploy: make([]int, n)}
	for _, r := range results {
		if r.Err == "" && r.Status >= 200 && r.Status < 300 && !r.Broken {
			continue
		}
		i := sort.Search(n, func(i int) bool { return starts[i].After(r.Start) }) - 1
		if i >= 0 {
			o.perDeploy[i]++
		}
	}
	slices.Sort(took)
	o.median = took[len(took)/2]
	return o
}

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

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s: %v", name, err)
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
