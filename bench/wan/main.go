// Command wan measures deploys over SSH as over a real network: real OpenSSH servers on loopback,
// each behind a delay proxy (internal/delayproxy) that holds every chunk for half the round-trip
// time in each direction. For each round-trip time it measures, side by side and alternating,
// Capistrano 3 (Debian's capistrano package, git strategy, bench/ssh/cap) and ferry on one host
// and the same 2,000-file site: an incremental deploy (1 file changed), listing the releases and
// a rollback; then ferry alone deploying incrementally to fleets. It counts the bytes ferry's
// incremental deploy puts on the wire (both directions, at the proxy), prints a markdown table of
// medians and writes it, the raw samples and a chart (time against RTT, incremental deploy to one
// host) to bench/out/.
//
//	go run ./bench/wan [-rounds 5] [-files 2000] [-rtt 0,25,50] [-hosts 1,10,20]
//
// Run it from the repository root as root. It installs what it needs from Debian's packages:
// openssh-server, capistrano (with ruby-ed25519 and ruby-bcrypt-pbkdf for ed25519 keys), git,
// and librsvg2-bin (rsvg-convert, which turns the SVG chart into a PNG).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/bench/internal/benchkit"

	"github.com/skeema/knownhosts"

	"github.com/ferry-deploy/ferry/internal/delayproxy"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// result holds the samples of one round-trip time.
type result struct {
	RTTms int `json:"rtt_ms"`
	// Times are keyed by tool and operation: "capistrano deploy", "ferry deploy" (after a deploy),
	// "… redeploy" (after a rollback), "… releases", "… rollback" on one host, and
	// "ferry deploy N hosts".
	Times map[string][]time.Duration `json:"times_ns"`
	// Bytes on the wire during ferry's deploys, summed over the hosts' proxies, keyed as Times.
	BytesUp   map[string][]int64 `json:"bytes_up"`
	BytesDown map[string][]int64 `json:"bytes_down"`
}

// capReleasesTask lists the releases the way a Capistrano user would without a plugin: Capistrano
// has no command of its own for it. It is loaded with cap's -R (rakelib directory).
const capReleasesTask = `namespace :wan do
  desc "List the releases, as ferry releases does"
  task :releases do
    on roles(:app) do
      puts capture(:ls, "-1", releases_path)
    end
  end
end
`

func main() {
	rounds := flag.Int("rounds", 5, "runs of each measurement at each round-trip time")
	files := flag.Int("files", 2000, "files in the site")
	rttFlag := flag.String("rtt", "0,25,50", "round-trip times to measure, in milliseconds")
	hostsFlag := flag.String("hosts", "1,10,20", "fleet sizes for ferry's incremental deploy (1 is also measured against Capistrano)")
	outDir := flag.String("out", "bench/out", "directory for wan.md, wan.json, wan.svg and wan.png")
	flag.Parse()
	log.SetFlags(0)
	rtts, hosts := intList(*rttFlag), intList(*hostsFlag)
	if len(rtts) == 0 || len(hosts) == 0 || *rounds < 1 {
		log.Fatal("need -rounds ≥ 1 and at least one -rtt and one -hosts")
	}
	benchkit.Install("openssh-server", "capistrano", "ruby-ed25519", "ruby-bcrypt-pbkdf", "git", "librsvg2-bin")
	benchkit.Must(os.MkdirAll(*outDir, 0o755))

	env := &webtest.Program{}
	defer env.Close()
	// From here on a failure stops the servers before exiting: they run in process groups of
	// their own and would outlive the program.
	fatalf := env.Fatalf
	check := func(err error) {
		if err != nil {
			fatalf("%v", err)
		}
	}
	work := env.TempDir()
	ferry := filepath.Join(work, "ferry")
	if out, err := exec.Command("go", "build", "-o", ferry, "./cmd/ferry").CombinedOutput(); err != nil {
		fatalf("go build ./cmd/ferry: %v\n%s", err, out)
	}
	client := webtest.NewSSHClient(env)
	home := filepath.Join(work, "home")
	check(os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	rakelib := filepath.Join(work, "rakelib")
	check(os.MkdirAll(rakelib, 0o755))
	check(os.WriteFile(filepath.Join(rakelib, "wan.rake"), []byte(capReleasesTask), 0o644))

	// The site, in a git repository for Capistrano and as a directory for ferry.
	site := filepath.Join(work, "site")
	check(makeSite(site, *files))
	check(git(site, "init", "-q", "-b", "main"))
	check(git(site, "add", "-A"))
	check(git(site, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "v0"))
	version := 0
	change := func() {
		version++
		check(os.WriteFile(filepath.Join(site, "public", "index.html"), fmt.Appendf(nil, "<h1>version %d</h1>\n", version), 0o644))
		check(git(site, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-am", fmt.Sprint("v", version)))
	}

	// Capistrano deploys to web1, ferry alone to web2; fleets of n hosts are web1..webn (with
	// roots of their own). Each server sits behind a delay proxy, started anew for each RTT.
	servers := make([]*webtest.SSHD, max(2, slices.Max(hosts)))
	for i := range servers {
		servers[i] = webtest.StartSSHD(env, client, false)
	}
	ferryEnv := append(os.Environ(), "HOME="+home)
	knownHosts := filepath.Join(home, ".ssh", "known_hosts")

	capRoot := filepath.Join(work, "cap-root")
	// Capistrano's linked files must exist before its first deploy.
	check(os.MkdirAll(filepath.Join(capRoot, "shared", "public", "uploads"), 0o755))
	check(os.WriteFile(filepath.Join(capRoot, "shared", ".env"), []byte("APP=bench\n"), 0o600))
	var capEnv []string
	capRun := func(task string) time.Duration {
		cmd := exec.Command("cap", "-R", rakelib, "bench", task)
		cmd.Dir = "bench/ssh/cap"
		cmd.Env = capEnv
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			fatalf("cap %s: %v\n%s", task, err, out)
		}
		return time.Since(start)
	}

	fleetCfg := func(n int) string { return benchkit.FleetConfig(work, site, n) }
	ferryRun := func(cfg string, args ...string) time.Duration {
		cmd := exec.Command(ferry, append([]string{"-q", "-c", cfg}, args...)...)
		cmd.Env = ferryEnv
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			fatalf("ferry %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	one := fleetCfg(1)
	var fleets []int
	for _, n := range hosts {
		if n > 1 {
			fleets = append(fleets, n)
		}
	}

	var results []*result
	for i, rtt := range rtts {
		res := &result{RTTms: rtt, Times: map[string][]time.Duration{}, BytesUp: map[string][]int64{}, BytesDown: map[string][]int64{}}
		results = append(results, res)
		proxies := make([]*delayproxy.Proxy, len(servers))
		for j, s := range servers {
			p, err := delayproxy.Start(env, s.Addr, time.Duration(rtt)*time.Millisecond/2)
			check(err)
			proxies[j] = p
		}
		check(writeSSHFiles(home, client.KeyFile, servers, proxies))
		capEnv = append(os.Environ(), "BENCH_REPO=file://"+site, "BENCH_ROOT="+capRoot, "BENCH_PORT="+proxies[0].Port(),
			"BENCH_KEY="+client.KeyFile, "BENCH_KNOWN_HOSTS="+knownHosts)
		record := func(key string, d time.Duration) { res.Times[key] = append(res.Times[key], d) }
		// deployFleet deploys to n hosts and records the bytes that crossed their proxies under key.
		deployFleet := func(key string, n int, cfg string) time.Duration {
			first, count := 0, n
			if n == 1 {
				first, count = 1, 1
			}
			for _, p := range proxies[first : first+count] {
				p.Reset()
			}
			d := ferryRun(cfg, "deploy")
			var up, down int64
			for _, p := range proxies[first : first+count] {
				up += p.BytesUp()
				down += p.BytesDown()
			}
			res.BytesUp[key] = append(res.BytesUp[key], up)
			res.BytesDown[key] = append(res.BytesDown[key], down)
			return d
		}

		if i == 0 { // first deploys, not measured
			log.Printf("first deploys (RTT %d ms)", rtt)
			capRun("deploy")
			ferryRun(one, "deploy")
			for _, n := range fleets {
				ferryRun(fleetCfg(n), "deploy")
			}
		}

		// One host, Capistrano and ferry alternating which goes first. Each round ends with a
		// rollback, so it also measures the deploy that follows one (ferry's manifest cache knows
		// the release it deployed last, not always the one rolled back to), and the next round's
		// first deploy follows a deploy again.
		for r := range *rounds {
			pair := func(name, capTask string, ferryOp func() time.Duration) {
				c := func() { record("capistrano "+name, capRun(capTask)) }
				f := func() { record("ferry "+name, ferryOp()) }
				if r%2 == 0 {
					c()
					f()
				} else {
					f()
					c()
				}
			}
			change()
			pair("deploy", "deploy", func() time.Duration { return deployFleet("ferry deploy", 1, one) })
			pair("releases", "wan:releases", func() time.Duration { return ferryRun(one, "releases") })
			pair("rollback", "deploy:rollback", func() time.Duration { return ferryRun(one, "rollback") })
			change()
			pair("redeploy", "deploy", func() time.Duration { return deployFleet("ferry redeploy", 1, one) })
			log.Printf("RTT %d ms: round %d of %d, one host, done", rtt, r+1, *rounds)
		}
		// ferry alone to fleets.
		for _, n := range fleets {
			cfg := fleetCfg(n)
			for range *rounds {
				change()
				key := fmt.Sprintf("ferry deploy %d hosts", n)
				record(key, deployFleet(key, n, cfg))
			}
			log.Printf("RTT %d ms: %d hosts done", rtt, n)
		}
		for _, p := range proxies {
			p.Close()
		}
	}

	var md strings.Builder
	writeTables(&md, results, fleets, *files, *rounds)
	fmt.Print(md.String())
	check(os.WriteFile(filepath.Join(*outDir, "wan.md"), []byte(md.String()), 0o644))
	raw, err := json.MarshalIndent(results, "", "  ")
	check(err)
	check(os.WriteFile(filepath.Join(*outDir, "wan.json"), raw, 0o644))
	svg := filepath.Join(*outDir, "wan.svg")
	check(writeChart(svg, results, *files))
	png := filepath.Join(*outDir, "wan.png")
	if out, err := exec.Command("rsvg-convert", "-f", "png", "-o", png, svg).CombinedOutput(); err != nil {
		log.Printf("rsvg-convert: %v\n%s(the chart is in %s)", err, out, svg)
	}
	log.Printf("wrote %s", strings.Join([]string{"wan.md", "wan.json", "wan.svg", "wan.png"}, ", ")+" to "+*outDir)
}

// writeSSHFiles points the ssh_config alias webN at the proxy in front of server N, and trusts
// each server's host key under the proxy's address ([127.0.0.1]:port), which is the address
// ferry and Capistrano connect to and look up.
func writeSSHFiles(home, keyFile string, servers []*webtest.SSHD, proxies []*delayproxy.Proxy) error {
	var cfg, kh strings.Builder
	for i, p := range proxies {
		fmt.Fprintf(&cfg, "Host web%d\n  HostName 127.0.0.1\n  Port %s\n  User root\n  IdentityFile %s\n\n", i+1, p.Port(), keyFile)
		fmt.Fprintln(&kh, knownhosts.Line([]string{p.Addr()}, servers[i].HostKey))
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(kh.String()), 0o600)
}

func writeTables(b *strings.Builder, results []*result, fleets []int, files, rounds int) {
	ops := []struct{ key, name string }{
		{"deploy", "incremental deploy (1 file changed)"},
		{"redeploy", "incremental deploy after a rollback"},
		{"rollback", "rollback"},
		{"releases", "list releases"},
	}
	fmt.Fprintf(b, "| 1 host, %s files | RTT | Capistrano 3.17 | ferry | ferry / Capistrano |\n", thousands(int64(files)))
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, op := range ops {
		for _, r := range results {
			c, f := benchkit.Median(r.Times["capistrano "+op.key]), benchkit.Median(r.Times["ferry "+op.key])
			fmt.Fprintf(b, "| %s | %d ms | %s | %s | %.2f× |\n", op.name, r.RTTms, ms(c), ms(f), float64(f)/float64(c))
		}
	}

	b.WriteString("\n| ferry, incremental deploy | RTT | time | bytes up (to hosts) | bytes down | bytes per host |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	type row struct {
		key, name string
		hosts     int
	}
	rows := []row{{"ferry deploy", "1 host", 1}, {"ferry redeploy", "1 host, after a rollback", 1}}
	for _, n := range fleets {
		rows = append(rows, row{fmt.Sprintf("ferry deploy %d hosts", n), fmt.Sprintf("%d hosts", n), n})
	}
	for _, row := range rows {
		for _, r := range results {
			up, down := benchkit.Median(r.BytesUp[row.key]), benchkit.Median(r.BytesDown[row.key])
			fmt.Fprintf(b, "| %s | %d ms | %s | %s | %s | %s |\n", row.name, r.RTTms, ms(benchkit.Median(r.Times[row.key])),
				thousands(up), thousands(down), thousands((up+down)/int64(row.hosts)))
		}
	}

	// The slope of time against RTT is the number of round trips waited for one after another.
	if _, ok := slope(results, "ferry deploy"); ok {
		b.WriteString("\n| round trips (slope of time against RTT, least squares over all runs) | Capistrano 3.17 | ferry |\n|---|---:|---:|\n")
		trips := func(key string) string {
			if v, ok := slope(results, key); ok {
				return fmt.Sprintf("%.1f", v)
			}
			return "–"
		}
		for _, op := range ops {
			fmt.Fprintf(b, "| %s, 1 host | %s | %s |\n", op.name, trips("capistrano "+op.key), trips("ferry "+op.key))
		}
		for _, row := range rows[2:] {
			fmt.Fprintf(b, "| incremental deploy, %s | – | %s |\n", row.name, trips(row.key))
		}
	}
	fmt.Fprintf(b, "\nmedians of %d runs; each sshd on 127.0.0.1 behind a delay proxy holding each chunk for RTT/2 each way; %d cores\n",
		rounds, benchkit.NumCPU())
}

// slope fits time = a + b × RTT to every sample of key by least squares and returns b: the number
// of round trips the operation waits for one after another. ok is false without two RTTs.
func slope(results []*result, key string) (b float64, ok bool) {
	var n, sx, sy, sxx, sxy float64
	for _, r := range results {
		for _, d := range r.Times[key] {
			x, y := float64(r.RTTms), float64(d)/float64(time.Millisecond)
			n++
			sx += x
			sy += y
			sxx += x * x
			sxy += x * y
		}
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / den, true
}

// writeChart draws the median time of the incremental deploy to one host against the RTT, for
// ferry and Capistrano, as lines in an SVG file (bench/zdd/chart.go's approach).
func writeChart(path string, results []*result, files int) error {
	const w, h, left, right, bottom, top = 760, 400, 70, 70, 50, 60
	type line struct {
		tool, key, color string
	}
	lines := []line{{"Capistrano 3.17", "capistrano deploy", "#e8590c"}, {"ferry", "ferry deploy", "#2b8a3e"}}
	maxRTT, maxMs := 1, 1.0
	for _, r := range results {
		maxRTT = max(maxRTT, r.RTTms)
		for _, l := range lines {
			maxMs = max(maxMs, float64(benchkit.Median(r.Times[l.key]).Microseconds())/1000)
		}
	}
	step := niceStep(maxMs / 5)
	maxMs = step * float64(int(maxMs/step)+1)
	plotW, plotH := float64(w-left-right), float64(h-top-bottom)
	x := func(rtt int) float64 { return float64(left+20) + (plotW-40)*float64(rtt)/float64(maxRTT) }
	y := func(v float64) float64 { return float64(h-bottom) - plotH*v/maxMs }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">Incremental deploy to one host over SSH (1 of %s files changed), median time</text>`+"\n", left, thousands(int64(files)))
	for v := 0.0; v <= maxMs+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, w-right, y(v), y(v), left-6, y(v)+4, tick(v, step))
	}
	for _, r := range results {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/><text x="%.1f" y="%d" text-anchor="middle">%d ms</text>`+"\n",
			x(r.RTTms), x(r.RTTms), h-bottom, h-bottom+5, x(r.RTTms), h-bottom+18, r.RTTms)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">round-trip time</text>`+"\n", left+int(plotW/2), h-10)
	sorted := slices.Clone(results)
	slices.SortFunc(sorted, func(a, b *result) int { return a.RTTms - b.RTTms })
	for i, l := range lines {
		var pts []string
		for _, r := range sorted {
			v := float64(benchkit.Median(r.Times[l.key]).Microseconds()) / 1000
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.RTTms), y(v)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/><text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%s</text>`+"\n",
				x(r.RTTms), y(v), l.color, x(r.RTTms), y(v)-9, l.color, label(v))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), l.color)
		lx := left + 10 + i*200
		fmt.Fprintf(&b, `<rect x="%d" y="34" width="10" height="10" fill="%s"/><text x="%d" y="43">%s</text>`+"\n", lx, l.color, lx+14, l.tool)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for p > v*10 {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// tick labels a value of the time axis, in milliseconds, with a grid of step milliseconds.
func tick(v, step float64) string {
	switch {
	case v == 0:
		return "0"
	case step >= 1000:
		return fmt.Sprintf("%g s", v/1000)
	}
	return fmt.Sprintf("%g ms", v)
}

// label labels a measured time in milliseconds.
func label(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// makeSite writes the site of bench/ssh: small JS files in 40 directories, and an index.html.
func makeSite(dir string, files int) error {
	for i := range files {
		p := filepath.Join(dir, "public", "static", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.js", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "/* %d */ console.log(%d);\n%s", i, i, strings.Repeat("x", 500+i%3000)), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>version 0</h1>\n"), 0o644)
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return nil
}

func intList(s string) []int {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			log.Fatalf("%q: not a list of numbers ≥ 0", s)
		}
		out = append(out, n)
	}
	return out
}

func ms(d time.Duration) string { return thousands(d.Milliseconds()) + " ms" }

// thousands writes n with commas between groups of three digits, as the README's tables do.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
