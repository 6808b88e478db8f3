// Package release is the layout engine: on one host it allocates release ids, prepares release
// directories, links shared paths, swaps current atomically, rolls back, cleans up, and keeps the
// lock, the log and the manifests under <root>/.ferry. Every invariant of DESIGN §2 lives here.
//
// Each step on a host is one request: the engine writes what must happen as a POSIX sh script
// (every value through host.Quote) and the host runs it, so a step costs one round trip whatever
// it does. The files are named by step: probe.go (lock, recovery and state in one request),
// prepare.go (the release and its shared links, around the upload stream), swap.go (activation
// and rollback), cleanup.go, lock.go, log.go, hook.go, id.go. The package works through host.Host
// only and knows nothing of SSH, config files or the CLI.
package release

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/host"
)

// Root is one deploy root on one host. It is used by one goroutine at a time.
type Root struct {
	Host host.Host
	Dir  string // absolute path of <root> on the host
	// Environment is the environment of ferry.yaml the run uses (FERRY_ENVIRONMENT), if any.
	Environment string
	// Sockets are the socket services on this host (see Socket): swaps move their links,
	// removals keep a release whose process runs, and a run's unlock stops stale processes.
	Sockets []Socket
	// FromEnv maps values that came from the deployer's environment (a CI secret in a hook's
	// command) to what the log writes instead: "{{env.NAME}}".
	FromEnv map[string]string
	// renameWait is how long a swap's finish waits for its rename (see Swap.Commit); zero is
	// 10 s. Tests shorten it.
	renameWait time.Duration
}

// New returns the root at dir on h.
func New(h host.Host, dir string) *Root {
	return &Root{Host: h, Dir: path.Clean(dir)}
}

// Paths of the layout (DESIGN §1).
func (r *Root) releasesDir() string           { return r.Dir + "/releases" }
func (r *Root) sharedDir() string             { return r.Dir + "/shared" }
func (r *Root) stateDir() string              { return r.Dir + "/.ferry" }
func (r *Root) currentPath() string           { return r.Dir + "/current" }
func (r *Root) logPath() string               { return r.stateDir() + "/log.jsonl" }
func (r *Root) manifestDir() string           { return r.stateDir() + "/manifests" }
func (r *Root) manifestPath(id string) string { return r.manifestDir() + "/" + id + ".json" }
func (r *Root) linksPath(id string) string    { return r.manifestDir() + "/" + id + ".links" }

// ReleaseDir is the absolute path of release id.
func (r *Root) ReleaseDir(id string) string { return r.releasesDir() + "/" + id }

// ReleasesDir is the absolute path of <root>/releases.
func (r *Root) ReleasesDir() string { return r.releasesDir() }

// SharedDir is the absolute path of <root>/shared.
func (r *Root) SharedDir() string { return r.sharedDir() }

// HintError is an error with a command or step that fixes it.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tempLinkGlob matches the temporary links of swaps (current.<randomSuffix>) and nothing a user
// would name current.something.
const tempLinkGlob = "current.[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]"

// q quotes a value for the scripts.
func q(s string) string { return host.Quote(s) }

// script builds one request's sh script. Every value goes through q; helper functions the
// steps share are defined once at the top.
type script struct {
	b     strings.Builder
	r     *Root
	trash []string // releases moved to the trash, to delete at the end (see emptyTrash)
}

func (r *Root) newScript() *script {
	s := &script{r: r}
	s.line("R=" + q(r.Dir))
	s.line(`L="$R/.ferry/log.jsonl"`)
	// die stops the request with a message for the user; note reports something to the engine
	// as NUL-separated fields on standard output.
	s.line(`die() { printf '%s\n' "$*"; exit 1; }`)
	s.line(`note() { for f in "$@"; do printf '%s\000' "$f"; done; }`)
	s.line(`durable() { sync -f "$1" 2>/dev/null || sync; }`)
	// ev appends an event to the log and makes it durable. A line torn by a crash is closed
	// first, so the new event starts on a line of its own.
	s.line(`ev() { if [ -s "$L" ] && [ -n "$(tail -c 1 "$L")" ]; then printf '\n' >>"$L"; fi; printf '%s\n' "$1" >>"$L" || die "cannot write the log $L"; durable "$L"; }`)
	return s
}

func (s *script) line(l string) { s.b.WriteString(l); s.b.WriteByte('\n') }

func (s *script) String() string {
	s.emptyTrash()
	return s.b.String()
}

// event appends ev to the log (see ev).
func (s *script) event(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	line, err := json.Marshal(ev)
	if err != nil {
		panic(err) // an Event always marshals
	}
	s.line(`ev ` + q(string(line)))
}

// settled renews the stamp that tells a live file changed behind ferry's back from one whose
// ctime ferry's own hard links changed: ferry writes it once it has made or removed links to
// the live release's inodes, so a live file with a newer ctime was changed by someone else
// (even with its mtime set back).
//
// It is renewed by a rename, never written through: a link planted at its name is replaced.
func (s *script) settled() { s.line(settledLine()) }

func settledLine() string {
	t := `"$R/.ferry/settled.tmp-` + randomSuffix() + `"`
	return `(set -C; : >` + t + `) 2>/dev/null && mv -f ` + t + ` "$R/.ferry/settled"`
}

// settlingPrefix names the markers of background deletions still running (see emptyTrash).
const settlingPrefix = "settling."

// run runs the script on the host and splits what note printed into fields.
func (s *script) run(ctx context.Context) ([]string, error) {
	out, err := s.r.Host.Script(ctx, s.String())
	if err != nil {
		return nil, scriptError(err)
	}
	return fields(out), nil
}

// scriptError turns a script's die into the message it gave.
func scriptError(err error) error {
	var ee *host.ExitError
	if errors.As(err, &ee) && ee.Code == 1 {
		if msg := strings.TrimSpace(strings.ReplaceAll(ee.Output, "\x00", " ")); msg != "" {
			return errors.New(msg)
		}
	}
	return err
}

// fields splits NUL-separated output; anything after the last NUL is dropped.
func fields(out []byte) []string {
	parts := strings.Split(string(out), "\x00")
	return parts[:len(parts)-1]
}

func kind(isDir bool) string {
	if isDir {
		return "dir"
	}
	return "file"
}

// TempLinkGlob is the sh glob that matches the temporary links of swaps, relative to the root.
func TempLinkGlob() string { return tempLinkGlob }
