package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

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
// with one of roles, all at once (at most opts.Parallel), with env added to FERRY_ROOT,
// FERRY_HOST and FERRY_SHARED_DIR. Each host's output goes to out(host). A host where it fails
// does not stop the others; the error names every such host.
func Run(ctx context.Context, cfg *config.Config, opts Options, roles []string, script string, env []string, out func(host string) io.Writer) ([]RunResult, error) {
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
			Env:    append([]string{"FERRY_ROOT=" + t.Root.Dir, "FERRY_HOST=" + t.Name, "FERRY_SHARED_DIR=" + t.Root.Dir + "/shared"}, env...),
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

// eventHooks runs the hooks of an event (on_failure, after_rollback) with env: local ones on
// this machine in the config's directory, the others in the live release of every selected
// host. They tell people; their failures are warnings.
func eventHooks(ctx context.Context, cfg *config.Config, opts Options, event string, hooks []config.Hook, env []string, rep Reporter) {
	if cfg.Environment != "" {
		env = append(env, "FERRY_ENVIRONMENT="+cfg.Environment)
	}
	for _, h := range hooks {
		timeout := time.Duration(h.Timeout)
		if timeout <= 0 {
			timeout = time.Duration(cfg.HookTimeout)
		}
		if timeout <= 0 {
			timeout = config.DefaultHookTimeout
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		if h.Local {
			cmd := exec.CommandContext(hctx, "sh", "-c", h.Run)
			cmd.Dir = cfg.Dir
			cmd.Env = append(os.Environ(), env...)
			w := &writerFunc{fn: func(p []byte) { rep.Output("local", p) }}
			cmd.Stdout, cmd.Stderr = w, w
			if err := cmd.Run(); err != nil {
				rep.Warn("local", fmt.Sprintf("%s hook %q: %v", event, h.Run, err))
			}
		} else if _, err := Run(hctx, cfg, opts, h.Roles, h.Run, env, func(host string) io.Writer {
			return &writerFunc{fn: func(p []byte) { rep.Output(host, p) }}
		}); err != nil {
			rep.Warn("local", fmt.Sprintf("%s hook %q: %v", event, h.Run, err))
		}
		cancel()
	}
}
