// Package service runs what must happen after current moves: each service's reload (or restart)
// command, and the health check that proves the new release answers. It works through
// host.Host and knows nothing of releases' layout, config files or the CLI.
package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Service is a process to tell about a new current release.
type Service struct {
	Name    string
	Reload  string // graceful: re-read code, keep serving
	Restart string // used instead of Reload when a shared file (the environment) changed
	// RestartAlways runs Restart after every swap. Without it, a service with only Restart
	// restarts only when a shared file changed, and is left alone otherwise.
	RestartAlways bool
}

// Action is what was run for one service.
type Action struct {
	Service string
	Kind    string // "reload" or "restart"
	Took    time.Duration
}

// Error is a service command that failed, with its output.
type Error struct {
	Service, Kind, Output string
	Err                   error
}

func (e *Error) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("%s %s: %v", e.Kind, e.Service, e.Err)
	}
	return fmt.Sprintf("%s %s: %v; its output:\n%s", e.Kind, e.Service, e.Err, out)
}

func (e *Error) Unwrap() error { return e.Err }

// Notify runs each service's reload, or its restart when restart is set (a shared file changed)
// or the service has RestartAlways, in dir on h. A service with only a restart command is left
// alone when neither holds. It stops at the first failure.
func Notify(ctx context.Context, h host.Host, dir string, env []string, services []Service, restart bool, timeout time.Duration, out func([]byte)) ([]Action, error) {
	var done []Action
	for _, s := range services {
		kind, script := "reload", s.Reload
		if s.Restart != "" && (restart || s.RestartAlways) {
			kind, script = "restart", s.Restart
		}
		if script == "" {
			continue
		}
		start := time.Now()
		var buf strings.Builder
		w := writerFunc(func(p []byte) {
			buf.Write(p)
			if out != nil {
				out(p)
			}
		})
		err := h.Run(ctx, host.Command{Script: script, Dir: dir, Env: env, Stdout: w, Stderr: w, Timeout: timeout})
		if err != nil {
			return done, &Error{Service: s.Name, Kind: kind, Output: buf.String(), Err: err}
		}
		done = append(done, Action{Service: s.Name, Kind: kind, Took: time.Since(start)})
	}
	return done, nil
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
