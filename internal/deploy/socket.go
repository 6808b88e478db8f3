package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/service"
)

// DefaultReadyTimeout is how long a socket service's new process has to answer when health
// is not configured (with health, its timeout).
const DefaultReadyTimeout = 30 * time.Second

// startProcesses starts release id's process of every socket service on t and waits until
// each answers on its socket. With reuse (a rollback), a process of the release that still
// runs and was never asked to stop is kept. Nothing live changes here: the stable links move
// with the swap. A process that does not answer is left for the caller to kill (Root.Fail, or
// Root.KillProcesses).
func startProcesses(ctx context.Context, cfg *config.Config, t *Target, id, previous string, reuse bool, rep Reporter) error {
	for _, so := range t.Root.Sockets {
		start := time.Now()
		reused := false
		sock := t.Root.SocketPath(so.Name, id)
		if so.Supervised() {
			if err := t.Root.MarkSupervised(ctx, so, id); err != nil {
				return err
			}
			var out strings.Builder
			w := &writerFunc{fn: func(p []byte) { out.Write(p); rep.Output(t.Name, p) }}
			err := t.Root.Host.Run(ctx, host.Command{Script: t.Root.Expand(so, so.Start, id), Dir: t.Root.ReleaseDir(id), Env: t.Root.SocketEnv(so, id, previous, t.Name),
				Stdout: w, Stderr: w, Timeout: time.Duration(cfg.HookTimeout)})
			if err != nil {
				return fmt.Errorf("%s: start %q: %w; its output:\n%s", so.Name, so.Start, err, strings.TrimRight(out.String(), "\n"))
			}
		} else {
			ps, err := t.Root.StartProcess(ctx, so, id, previous, t.Name, reuse)
			if err != nil {
				return err
			}
			sock, reused = ps.Socket, ps.Reused
		}
		var check *service.Check
		timeout := DefaultReadyTimeout
		if t.Cfg.Health != nil {
			c := healthCheck(t.Cfg)
			check, timeout = &c, c.Timeout
		}
		// A socket that exists while the SSH server fails every connection to it until the
		// timeout: the server does not forward unix sockets (OpenSSH says only "open failed"),
		// or may not connect to this one. (A process may bind long before it listens.)
		var listening bool
		var last error
		err := service.Ready(ctx, t.Root.Host.DialContext, sock, check, id, timeout, func(ctx context.Context, l error) error {
			var err error
			listening, err = t.Root.ProcessCheck(ctx, so, id, sock)
			last = l
			return err
		})
		var pe *release.ProcessError
		var he *service.HealthError
		var oce *gossh.OpenChannelError
		if errors.As(err, &he) && listening && errors.As(last, &oce) {
			err = &release.HintError{
				Err:  fmt.Errorf("%s: the process has its socket %s, and the SSH server refused every connection to it for %s (%v)", so.Name, sock, timeout, last),
				Hint: "allow forwarding to unix sockets for the deploy user (AllowStreamLocalForwarding local in sshd_config), and let the deploy user connect to the socket (its mode)",
			}
		}
		var hint *release.HintError
		switch {
		case errors.As(err, &hint):
			return err
		case errors.As(err, &pe):
			return err
		case err != nil && !so.Supervised():
			return &release.ProcessError{Service: so.Name, Output: t.Root.ProcessOutput(context.WithoutCancel(ctx), so, id),
				Err: fmt.Errorf("release %s's process did not answer: %w", id, err)}
		case err != nil:
			return fmt.Errorf("%s: release %s's process did not answer: %w", so.Name, id, err)
		}
		rep.Step(Step{Host: t.Name, Kind: StepStart, Service: so.Name, Socket: sock, Reused: reused, Took: time.Since(start)})
	}
	return nil
}

// stoppedSteps reports the processes a run's end asked to stop.
func stoppedSteps(t *Target, d *release.Done, rep Reporter) {
	for _, s := range d.Stopped {
		name, id, _ := strings.Cut(s, " ")
		st := Step{Host: t.Name, Kind: StepStop, Service: name, Release: id}
		for _, so := range t.Root.Sockets {
			if so.Name == name && !so.Supervised() {
				st.Signal, st.Drain = so.Signal, so.Drain.String()
			}
		}
		rep.Step(st)
	}
}
