package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Hook is a command run in a release directory.
type Hook struct {
	Script  string
	Timeout time.Duration
}

// HookError carries a failed hook's output.
type HookError struct {
	Script string
	Output string
	Err    error
}

func (e *HookError) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("hook %q: %v", e.Script, e.Err)
	}
	return fmt.Sprintf("hook %q: %v; its output:\n%s", e.Script, e.Err, out)
}

func (e *HookError) Unwrap() error { return e.Err }

// forLog is err as the log keeps it: without a failed hook's output, which went to the terminal
// and may hold what the log must not (a hook that printed a database URL), and with each value
// that came from the deployer's environment written as the {{env.NAME}} it came from.
func (r *Root) forLog(err error) string {
	msg := err.Error()
	var he *HookError
	if errors.As(err, &he) {
		msg = strings.Replace(msg, he.Error(), fmt.Sprintf("hook %q: %v (its output is not logged)", he.Script, he.Err), 1)
	}
	return r.redact(msg)
}

// redact writes each value that came from the deployer's environment (at least 4 bytes: a
// shorter one is no secret, and replacing it would garble words) as the {{env.NAME}} it came
// from.
func (r *Root) redact(s string) string {
	// Longest first, so that a value inside another is not replaced in it first.
	values := slices.SortedFunc(maps.Keys(r.FromEnv), func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, r.FromEnv[v])
		}
	}
	return s
}

// RunHook runs hook in release id with env, streaming its output to out and keeping the tail of
// it for the error.
func (r *Root) RunHook(ctx context.Context, id string, hook Hook, env []string, out func([]byte)) error {
	tail := &tailBuffer{max: 16 << 10, forward: out}
	err := r.Host.Run(ctx, host.Command{Script: hook.Script, Dir: r.ReleaseDir(id), Env: env, Stdout: tail, Stderr: tail, Timeout: hook.Timeout})
	if err != nil {
		// The command as written, not with a CI secret in it: its error is printed, escaped,
		// where a CI's masking of the secret's own text would not find it.
		return &HookError{Script: r.redact(hook.Script), Output: tail.String(), Err: err}
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it and forwards every write.
type tailBuffer struct {
	max     int
	buf     []byte
	forward func([]byte)
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	if t.forward != nil {
		t.forward(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// Env is the FERRY_* environment of hooks and services for release id.
func (r *Root) Env(id, previous, hostName string) []string {
	env := []string{
		"FERRY_RELEASE=" + id,
		"FERRY_RELEASE_DIR=" + r.ReleaseDir(id),
		"FERRY_PREVIOUS_RELEASE=" + previous,
		"FERRY_ROOT=" + r.Dir,
		"FERRY_SHARED_DIR=" + r.sharedDir(),
		"FERRY_HOST=" + hostName,
	}
	if r.Environment != "" {
		env = append(env, "FERRY_ENVIRONMENT="+r.Environment)
	}
	return env
}
