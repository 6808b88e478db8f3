// Command ssh measures deploys over SSH on loopback against real OpenSSH servers: Capistrano 3
// (Debian's capistrano package, git strategy, bench/ssh/cap) and ferry, side by side on the same
// sshd and the same 2,000-file site: a first deploy, an incremental deploy (1 file changed) and a
// rollback; then ferry alone on 1, 5 and 20 servers, with the activation skew (the spread of the
// hosts' swap times, from each host's log).
//
//	go run ./bench/ssh [-rounds 5] [-files 2000]
//
// Run it from the repository root as root. It installs what it needs from Debian's packages:
// openssh-server, capistrano (with ruby-ed25519 and ruby-bcrypt-pbkdf for ed25519 keys) and git.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/bench/internal/benchkit"

	"github.com/ferry-deploy/ferry/internal/webtest"
)

func main() {
	rounds := flag.Int("rounds", 5, "runs of each measurement")
	files := flag.Int("files", 2000, "files in the site")
	flag.Parse()
	log.SetFlags(0)
	benchkit.Install("openssh-server", "capistrano", "ruby-ed25519", "ruby-bcrypt-pbkdf", "git")

	env := &webtest.Program{}
	defer env.Close()
	work := env.TempDir()
	ferry := filepath.Join(work, "ferry")
	benchkit.Must(exec.Command("go", "build", "-o", ferry, "./cmd/ferry").Run())
	client := webtest.NewSSHClient(env)
	home := filepath.Join(work, "home")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)

	// The site, in a git repository for Capistrano and as a directory for ferry.
	site := filepath.Join(work, "site")
	makeSite(site, *files)
	git(site, "init", "-q", "-b", "main")
	git(site, "add", "-A")
	git(site, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "v0")

	servers := make([]*webtest.SSHD, 20)
	for i := range servers {
		servers[i] = webtest.StartSSHD(env, client, false)
		client.Alias(env, fmt.Sprintf("web%d", i+1), servers[i])
	}
	ferryEnv := append(os.Environ(), "HOME="+home)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), mustRead(client.Config), 0o600)
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), mustRead(client.KnownHosts), 0o600)

	change := func(n int) {
		os.WriteFile(filepath.Join(site, "public", "index.html"), fmt.Appendf(nil, "<h1>version %d</h1>\n", n), 0o644)
		git(site, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-am", fmt.Sprint("v", n))
	}
	version := 0

	// Capistrano against web1, ferry against web2: same sshd build, same site.
	capRoot := filepath.Join(work, "cap-root")
	capEnv := append(os.Environ(), "BENCH_REPO=file://"+site, "BENCH_ROOT="+capRoot, "BENCH_PORT="+servers[0].Port,
		"BENCH_KEY="+client.KeyFile, "BENCH_KNOWN_HOSTS="+client.KnownHosts)
	capDeploy := func(task string) time.Duration {
		cmd := exec.Command("cap", "bench", task)
		cmd.Dir = "bench/ssh/cap"
		cmd.Env = capEnv
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("cap %s: %v\n%s", task, err, out)
		}
		return time.Since(start)
	}
	// Capistrano's linked files must exist before its first deploy.
	os.MkdirAll(filepath.Join(capRoot, "shared", "public", "uploads"), 0o755)
	os.WriteFile(filepath.Join(capRoot, "shared", ".env"), []byte("APP=bench\n"), 0o600)

	hostsCfg := func(n int) string { return benchkit.FleetConfig(work, site, n) }
	ferryRun := func(cfg string, args ...string) time.Duration {
		cmd := exec.Command(ferry, append([]string{"-q", "-c", cfg}, args...)...)
		cmd.Env = ferryEnv
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("ferry %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}

	var capFirst, capInc, capRb, fFirst, fInc, fRb []time.Duration
	one := hostsCfg(1)
	for r := range *rounds {
		os.RemoveAll(filepath.Join(capRoot, "releases"))
		os.RemoveAll(filepath.Join(capRoot, "repo"))
		os.Remove(filepath.Join(capRoot, "current"))
		os.RemoveAll(filepath.Join(work, "ferry-1"))
		capFirst = append(capFirst, capDeploy("deploy"))
		fFirst = append(fFirst, ferryRun(one, "deploy"))
		version++
		change(version)
		capInc = append(capInc, capDeploy("deploy"))
		fInc = append(fInc, ferryRun(one, "deploy"))
		capRb = append(capRb, capDeploy("deploy:rollback"))
		fRb = append(fRb, ferryRun(one, "rollback"))
		log.Printf("round %d done", r+1)
	}
	fmt.Printf("| over SSH, %d files | Capistrano 3.17 (median) | ferry (median) | ferry / Capistrano |\n|---|---:|---:|---:|\n", *files)
	row := func(name string, c, f []time.Duration) {
		mc, mf := benchkit.Median(c), benchkit.Median(f)
		fmt.Printf("| %s | %s | %s | %.2f× |\n", name, ms(mc), ms(mf), float64(mf)/float64(mc))
	}
	row("first deploy", capFirst, fFirst)
	row("incremental (1 file changed)", capInc, fInc)
	row("rollback", capRb, fRb)

	fmt.Printf("\n| ferry, hosts | first deploy | incremental | activation skew (median) |\n|---:|---:|---:|---:|\n")
	for _, n := range []int{1, 5, 20} {
		cfg := hostsCfg(n)
		var first, inc, skew []time.Duration
		for range *rounds {
			os.RemoveAll(filepath.Join(work, fmt.Sprintf("ferry-%d", n)))
			first = append(first, ferryRun(cfg, "deploy"))
			skew = append(skew, activationSkew(work, n))
			version++
			change(version)
			inc = append(inc, ferryRun(cfg, "deploy"))
			skew = append(skew, activationSkew(work, n))
		}
		fmt.Printf("| %d | %s | %s | %s |\n", n, ms(benchkit.Median(first)), ms(benchkit.Median(inc)), ms(benchkit.Median(skew)))
	}
	fmt.Printf("\nmedians of %d runs; all servers are Debian's sshd on 127.0.0.1; %d cores\n", *rounds, benchkit.NumCPU())
}

// activationSkew is the spread of the times at which the hosts' logs recorded the last swap.
func activationSkew(work string, n int) time.Duration {
	var times []time.Time
	dirs, _ := filepath.Glob(filepath.Join(work, fmt.Sprintf("ferry-%d", n), "web*"))
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, ".ferry", "log.jsonl"))
		if err != nil {
			log.Fatal(err)
		}
		var last time.Time
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev struct {
				Time  time.Time `json:"time"`
				Event string    `json:"event"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "activate" {
				last = ev.Time
			}
		}
		f.Close()
		times = append(times, last)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	return times[len(times)-1].Sub(times[0])
}

func makeSite(dir string, files int) {
	for i := range files {
		p := filepath.Join(dir, "public", "static", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.js", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, fmt.Appendf(nil, "/* %d */ console.log(%d);\n%s", i, i, strings.Repeat("x", 500+i%3000)), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>version 0</h1>\n"), 0o644)
}

func git(dir string, args ...string) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	benchkit.Must(err)
	return b
}
