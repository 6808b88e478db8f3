// Command ferry ships a build to one host or a fleet with zero downtime: timestamped releases,
// an atomically swapped current symlink, shared state, hooks, rollback and cleanup.
package main

import (
	"os"

	"github.com/ferry-deploy/ferry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
