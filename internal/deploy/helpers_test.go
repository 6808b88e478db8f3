package deploy

import (
	"github.com/ferry-deploy/ferry/internal/invariants"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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
