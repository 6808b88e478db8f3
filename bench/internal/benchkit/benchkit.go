// Package benchkit holds what the benchmark programs under bench/ share: failing fast, medians,
// the machine's core count, and installing the Debian packages a benchmark needs.
package benchkit

import (
	"cmp"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Must stops the program on err.
func Must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// Median is the middle of v (the upper one of an even count), or zero for none.
func Median[T cmp.Ordered](v []T) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// NumCPU is the number of cores this process may run on, as nproc says.
func NumCPU() int {
	out, _ := exec.Command("nproc").Output()
	var n int
	fmt.Sscan(string(out), &n)
	return n
}

// Install installs those of pkgs that Debian's dpkg does not have, with apt-get.
func Install(pkgs ...string) {
	var missing []string
	for _, p := range pkgs {
		if exec.Command("dpkg", "-s", p).Run() != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	log.Printf("installing %v", missing)
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("apt-get install %v: %v\n%s", missing, err, out)
	}
}

// FleetConfig writes work/ferry-<n>.yaml, which deploys site to the ssh aliases of n hosts, each
// with a root of its own under work (with shared/.env made), and returns its path. With one host it is web2: web1 is
// Capistrano's in the benchmarks that compare the two.
func FleetConfig(work, site string, n int) string {
	p := filepath.Join(work, fmt.Sprintf("ferry-%d.yaml", n))
	var b strings.Builder
	fmt.Fprintf(&b, "root: /unused\nsource: %s\nexclude: [.git]\nshared:\n  files: [.env]\n  dirs: [public/uploads]\nhosts:\n", site)
	for i := range n {
		host := i + 1
		if n == 1 {
			host = 2
		}
		root := fmt.Sprintf("%s/ferry-%d/web%d", work, n, host)
		fmt.Fprintf(&b, "  - ssh: web%d\n    root: %s\n", host, root)
		// The shared file the operator made before the first deploy, as ferry asks.
		Must(os.MkdirAll(root+"/shared", 0o755))
		Must(os.WriteFile(root+"/shared/.env", []byte("APP=bench\n"), 0o600))
	}
	Must(os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}
