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
// marker is left), so that a test's directories can be removed.
func waitSettled(t *testing.T, root string) {
	waitFor(t, "background deletions in "+root, func() bool {
		m, _ := filepath.Glob(filepath.Join(root, ".ferry", "settling.*"))
		return len(m) == 0
	})
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
