// Command local measures ferry's engine on this machine against the floor of what an
// incremental deploy must do: hard-link the previous release (cp -al) and stat every file of the
// build (find). Both are timed side by side in one run, alternating, on the same site with one
// file changed each round.
//
//	go run ./bench/local [-rounds 9] [-files 20000]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/bench/internal/benchkit"
)

func main() {
	rounds := flag.Int("rounds", 9, "runs of each measurement")
	files := flag.Int("files", 20000, "files in the site")
	flag.Parse()
	log.SetFlags(0)
	work, err := os.MkdirTemp("", "ferry-bench-local-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	ferry := filepath.Join(work, "ferry")
	run("go", "build", "-o", ferry, "./cmd/ferry")
	site := filepath.Join(work, "site")
	build := filepath.Join(site, "build")
	for i := range *files {
		p := filepath.Join(build, fmt.Sprintf("public/d%03d/f%05d.txt", i/100, i))
		if i%100 == 0 {
			benchkit.Must(os.MkdirAll(filepath.Dir(p), 0o755))
		}
		benchkit.Must(os.WriteFile(p, fmt.Appendf(nil, "file %d\n", i), 0o644))
	}
	root := filepath.Join(work, "srv")
	benchkit.Must(os.WriteFile(filepath.Join(site, "ferry.yaml"), fmt.Appendf(nil, "root: %s\nsource: ./build\nkeep_releases: 3\n", root), 0o644))
	deploy := func() time.Duration {
		cmd := exec.Command(ferry, "deploy", "-q")
		cmd.Dir = site
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("ferry deploy: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	deploy()
	deploy()
	// The floor's cp -al copies a tree of its own, as large as a release: linking the live
	// release's inodes would change their ctimes, which ferry then checks by hashing.
	floorSrc := filepath.Join(work, "floor-src")
	run("cp", "-a", build, floorSrc)

	var ferryT, cpT, scanT, floorT []time.Duration
	for r := range *rounds {
		benchkit.Must(os.WriteFile(filepath.Join(build, "public/d000/f00000.txt"), fmt.Appendf(nil, "round %d\n", r), 0o644))
		measureFloor := func() {
			copyDir := filepath.Join(work, "copy")
			run("sync")
			start := time.Now()
			run("cp", "-al", floorSrc, copyDir)
			c := time.Since(start)
			start = time.Now()
			run("find", build, "-printf", "%s %T@\\n")
			s := time.Since(start)
			cpT, scanT, floorT = append(cpT, c), append(scanT, s), append(floorT, c+s)
			benchkit.Must(os.RemoveAll(copyDir))
		}
		measureFerry := func() {
			run("sync")
			ferryT = append(ferryT, deploy())
		}
		if r%2 == 0 {
			measureFerry()
			measureFloor()
		} else {
			measureFloor()
			measureFerry()
		}
	}
	fmt.Printf("incremental deploy of a %d-file site, one file changed, %d rounds (medians)\n\n", *files, *rounds)
	fmt.Printf("| | time |\n|---|---:|\n")
	fmt.Printf("| cp -al of the release | %s |\n", ms(benchkit.Median(cpT)))
	fmt.Printf("| stat scan of the build (find -printf) | %s |\n", ms(benchkit.Median(scanT)))
	fmt.Printf("| floor: both | %s |\n", ms(benchkit.Median(floorT)))
	fmt.Printf("| ferry deploy | %s |\n", ms(benchkit.Median(ferryT)))
	fmt.Printf("| ferry / floor | %.2f× |\n", float64(benchkit.Median(ferryT))/float64(benchkit.Median(floorT)))
	fmt.Printf("\nferry samples: %s\nfloor samples: %s\n", list(ferryT), list(floorT))
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout = nil
	if out, err := cmd.CombinedOutput(); err != nil && !strings.HasPrefix(name, "find") {
		log.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func list(d []time.Duration) string {
	var out []string
	for _, x := range d {
		out = append(out, fmt.Sprint(x.Milliseconds()))
	}
	return strings.Join(out, " ") + " ms"
}
