package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
)

// RunResult is how an ad-hoc command ended on one host.
type RunResult struct {
	Host     string `json:"host"`
	ExitCode int    `json:"exit_code"`       // -1 when it could not run, or was killed
	Error    string `json:"error,omitempty"` // why, when it did not exit 0
}

// Run runs script with sh -c in the live release (current) of every selected host, or of those
// with one of roles, all at once (at most opts.Parallel). Each host's output goes to out(host).
// A host where it fails does not stop the others; the error names every such host.
func Run(ctx context.Context, cfg *config.Config, opts Options, roles []string, script string, out func(host string) io.Writer) ([]RunResult, error) {
	targets, err := selectTargets(cfg, opts)
	if err != nil {
		return nil, err
	}
	if len(roles) > 0 {
		targets = slices.DeleteFunc(targets, func(t *Target) bool {
			return !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(t.Roles, r) })
		})
		if len(targets) == 0 {
			return nil, fmt.Errorf("no host has the role %v: %w", roles, config.ErrConfig)
		}
	}
	defer closeAll(targets)
	res := make([]RunResult, len(targets))
	err = eachHostN(targets, opts.Parallel, func(t *Target) error {
		r := &res[slices.Index(targets, t)]
		r.Host = t.Name
		if err := dial(ctx, t, opts, false, false); err != nil {
			r.ExitCode, r.Error = -1, err.Error()
			return err
		}
		w := out(t.Name)
		err := t.Root.Host.Run(ctx, host.Command{
			Script: script,
			Dir:    t.Root.Dir + "/current",
			Env:    []string{"FERRY_ROOT=" + t.Root.Dir, "FERRY_HOST=" + t.Name, "FERRY_SHARED_DIR=" + t.Root.Dir + "/shared"},
			Stdout: w,
			Stderr: w,
		})
		var ee *host.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.ExitCode, r.Error = ee.Code, err.Error()
		default:
			r.ExitCode, r.Error = -1, err.Error()
		}
		return err
	})
	return res, err
}
