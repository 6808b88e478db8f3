// Command local measures ferry's engine on this machine against the floor of what an
// incremental deploy must do: hard-link the previous release (cp -al) and stat every file of the
// build (find). Both are timed side by side in one run, alternating, on the same site with one
// file changed each round.
//
//	go run ./bench/local [-rounds 9] [-files 20000] [-against OTHER-FERRY-BINARY]
//
// With -against, another build of ferry (an earlier commit's, say) deploys the same site to a
// root of its own in the same rounds, so that the two are compared side by side.
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
	against := flag.String("against", "", "another ferry binary to time in the same rounds")
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
	benchkit.Must(os.WriteFile(filepath.Join(site, "against.yaml"), fmt.Appendf(nil, "root: %s\nsource: ./build\nkeep_releases: 3\n", root+"-against"), 0o644))
	deployWith := func(bin, config string) time.Duration {
		cmd := exec.Command(bin, "deploy", "-q", "-c", config)
		cmd.Dir = site
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("ferry deploy: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	deploy := func() time.Duration { return deployWith(ferry, "ferry.yaml") }
	deploy()
	deploy()
	if *against != "" {
		deployWith(*against, "against.yaml")
		deployWith(*against, "against.yaml")
	}
	// The floor's cp -al copies a tree of its own, as large as a release: linking the live
	// release's inodes would change their ctimes, which ferry then checks by hashing.
	floorSrc := filepath.Join(work, "floor-src")
	run("cp", "-a", build, floorSrc)

	var ferryT, cpT, scanT, floorT, againstT []time.Duration
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
		measureAgainst := func() {
			if *against != "" {
				run("sync")
				againstT = append(againstT, deployWith(*against, "against.yaml"))
			}
		}
		if r%2 == 0 {
			measureFerry()
			measureFloor()
			measureAgainst()
		} else {
			measureAgainst()
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
	if *against != "" {
		fmt.Printf("| %s | %s |\n", *against, ms(benchkit.Median(againstT)))
		fmt.Printf("| ferry / %s | %.2f× |\n", *against, float64(benchkit.Median(ferryT))/float64(benchkit.Median(againstT)))
	}
	fmt.Printf("\nferry samples: %s\nfloor samples: %s\n", list(ferryT), list(floorT))
	if *against != "" {
		fmt.Printf("%s samples: %s\n", *against, list(againstT))
	}
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
