package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// exportRef writes a clean copy of ref, from the git repository that holds dir, into a new
// temporary directory, and returns the directory that stands for dir in it, the commit, and a
// function that removes the copy. The work tree is left alone: nothing is checked out.
func exportRef(ctx context.Context, dir, ref string) (string, *release.Git, func(), error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if strings.HasPrefix(ref, "-") {
		return "", nil, nil, fmt.Errorf("--ref %q: a ref does not start with -: %w", ref, config.ErrConfig)
	}
	commit, err := git("rev-parse", "--verify", "-q", "--end-of-options", ref+"^{commit}")
	if err != nil || commit == "" {
		return "", nil, nil, fmt.Errorf("--ref %s: not a commit of the git repository of %s: %w", ref, dir, config.ErrConfig)
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return "", nil, nil, fmt.Errorf("--ref %s: %w", ref, err)
	}
	prefix, err := git("rev-parse", "--show-prefix")
	if err != nil {
		return "", nil, nil, fmt.Errorf("--ref %s: %w", ref, err)
	}
	tmp, err := os.MkdirTemp("", "ferry-ref-")
	if err != nil {
		return "", nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	// git archive | tar -x: the files of the commit, as committed, and nothing else.
	archive := exec.CommandContext(ctx, "git", "-C", top, "archive", "--format=tar", commit)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", tmp)
	var stderr strings.Builder
	archive.Stderr, extract.Stderr = &stderr, &stderr
	pipe, err := archive.StdoutPipe()
	if err == nil {
		extract.Stdin = pipe
		err = archive.Start()
	}
	if err == nil {
		err = extract.Run()
		err = errors.Join(err, archive.Wait())
	}
	if err != nil {
		cleanup()
		return "", nil, nil, fmt.Errorf("--ref %s: export the commit: %w: %s", ref, err, strings.TrimSpace(stderr.String()))
	}
	g := &release.Git{Commit: commit}
	if _, err := git("show-ref", "--verify", "--quiet", "refs/heads/"+ref); err == nil {
		g.Branch = ref
	}
	return filepath.Join(tmp, filepath.FromSlash(strings.TrimSuffix(prefix, "/"))), g, cleanup, nil
}
