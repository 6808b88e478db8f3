package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-deploy/ferry/internal/invariants"
)

// waitFor polls cond until it holds or 20 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSettled waits until ferry's background deletions in root are done (no .ferry/settling.*
// marker is left), so that a test's directories can be removed. A marker whose deletion was
// killed with its run stays: after a few seconds it is left to the directory's removal.
func waitSettled(t *testing.T, root string) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(root, ".ferry", "settling.*")); len(m) == 0 {
			return
		}
	}
	t.Logf("a background deletion in %s did not finish (or was killed with its run)", root)
}

func readPID(t *testing.T, p string) int {
	t.Helper()
	var pid int
	waitFor(t, p, func() bool {
		b, err := os.ReadFile(p)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// invariantsOf checks the site's current release against its manifest.
func invariantsOf(s *site) []error {
	if err := invariants.MatchManifest(s.root, s.current(), s.cfg.SharedPaths()); err != nil {
		return []error{err}
	}
	return nil
}
