// Command ferry ships a build to one host or a fleet with zero downtime: timestamped releases,
// an atomically swapped current symlink, shared state, hooks, rollback and cleanup.
package main

import (
	"os"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ferry-deploy/ferry/internal/cli"
)

func main() {
	closeInherited()
	tuneGC()
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}

// closeInherited keeps the files ferry inherited beyond stdin, stdout and stderr (a pipe of the
// shell that started it) from the processes it starts: an app server ferry runs detached
// would hold them open for as long as it runs, and whoever waits for the pipe's end would hang.
func closeInherited() {
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// tuneGC lets the heap grow to five times what is live between collections, not twice, unless
// GOGC says otherwise: a run is short, and collecting the manifests of a large site took a
// tenth of a deploy's CPU. A soft limit of 1 GiB keeps a very large site's run from growing
// past it where collecting more often can prevent that.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}
