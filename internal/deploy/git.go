package deploy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/release"
)

// ErrDirty is wrapped by the error of a deploy refused because require_clean is set and the
// work tree has changes not committed.
var ErrDirty = errors.New("the git work tree has changes not committed")

// gitOf reads the commit the build comes from: the git work tree that holds the config's
// directory. It is nil when there is none, or git is not installed: recording it is a courtesy.
func gitOf(ctx context.Context, dir string) *release.Git {
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	commit, err := git("rev-parse", "--verify", "-q", "HEAD")
	if err != nil || commit == "" {
		return nil
	}
	g := &release.Git{Commit: commit}
	g.Branch, _ = git("symbolic-ref", "--short", "-q", "HEAD")
	if status, err := git("status", "--porcelain"); err == nil && status != "" {
		g.Dirty = true
	}
	return g
}

// checkGit warns about, or with require_clean refuses, a build from a work tree with changes not
// committed: the release would record a commit that is not what it holds.
func checkGit(cfg *config.Config, g *release.Git, rep Reporter) error {
	if g == nil || !g.Dirty {
		return nil
	}
	what := fmt.Sprintf("the git work tree of %s has changes not committed: the release records commit %s, which is not all it holds", cfg.Dir, short(g.Commit))
	if cfg.RequireClean {
		return &release.HintError{Err: fmt.Errorf("%s: %w (require_clean is set): %w", what, ErrDirty, config.ErrConfig), Hint: "commit or stash the changes, then deploy"}
	}
	rep.Warn("local", what)
	return nil
}

// short is a commit id as people read it.
func short(commit string) string { return commit[:min(len(commit), 12)] }

// hookEnv is a hook's environment with FERRY_COMMIT, the commit the build comes from, when known.
func hookEnv(env []string, g *release.Git) []string {
	if g != nil {
		env = append(env, "FERRY_COMMIT="+g.Commit)
	}
	return env
}
