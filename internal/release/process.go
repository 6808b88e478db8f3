package release

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Socket is a service that runs one process per release behind <root>/<name>.sock (DESIGN §5).
//
// Each process serves on <root>/run/<name>.<release>.sock. The swap renames a new link over
// <name>.sock in the request that logs current's rename, so both move together. Once a run
// that holds the lock ends, every process that is neither current's nor the one <name>.sock
// points at is stopped: its stop signal, then SIGKILL after Drain (in the background on the
// host, so that a deploy does not wait for the drain).
//
// Detached (Stop empty), ferry starts the process in a session of its own, with its output
// appended to <root>/run/<name>.<release>.log, and keeps its pid and start time in
// .ferry/proc/<name>.<release>; the start time tells a reused pid from the process. Supervised
// (Stop set), Start and Stop are the supervisor's commands, and the file says "supervised".
type Socket struct {
	Name   string
	Start  string
	Stop   string
	Signal string // TERM, …
	Drain  time.Duration
}

// Supervised reports whether a supervisor (systemd) runs the process rather than ferry.
func (s Socket) Supervised() bool { return s.Stop != "" }

// SocketPath is where release id's process of service name serves.
func (r *Root) SocketPath(name, id string) string { return r.Dir + "/run/" + name + "." + id + ".sock" }

// SocketLog is where the output of release id's detached process of service name goes.
func (r *Root) SocketLog(name, id string) string { return r.Dir + "/run/" + name + "." + id + ".log" }

// StableSocket is the link the web server connects to.
func (r *Root) StableSocket(name string) string { return r.Dir + "/" + name + ".sock" }

func (r *Root) procFile(name, id string) string { return r.Dir + "/.ferry/proc/" + name + "." + id }

// procFunctions defines alive PID START: whether process PID runs and started at START (field 22
// of /proc/PID/stat, after the command name, which may hold spaces).
// A zombie is not alive: it waits for a parent (or an init) to reap it.
const procFunctions = `alive() { [ -n "$2" ] && a=$(sed 's/^.*) //' /proc/$1/stat 2>/dev/null) && [ "${a%% *}" != Z ] && [ "$(printf '%s\n' "$a" | cut -d' ' -f20)" = "$2" ]; }`

// SocketEnv is the environment of a socket service's commands for release id: the hooks' own,
// and FERRY_SOCKET.
func (r *Root) SocketEnv(s Socket, id, previous, hostName string) []string {
	return append(r.Env(id, previous, hostName), "FERRY_SOCKET="+r.SocketPath(s.Name, id), "FERRY_SERVICE="+s.Name)
}

// Expand replaces {{socket}} and {{release}} in a socket service's command for release id.
func (r *Root) Expand(s Socket, cmd, id string) string {
	return strings.NewReplacer("{{socket}}", r.SocketPath(s.Name, id), "{{release}}", id).Replace(cmd)
}

// ProcessStart is what StartProcess did.
type ProcessStart struct {
	Reused bool // the release's process was already running, never asked to stop
}

// StartProcess starts release id's process of s, detached; a supervised service's start is run
// by the caller (see MarkSupervised). With reuse, a process of the release that runs and was
// never asked to stop is kept instead (a rollback to the release just left).
func (r *Root) StartProcess(ctx context.Context, s Socket, id string, env []string, reuse bool) (*ProcessStart, error) {
	p, sock, log := q(r.procFile(s.Name, id)), q(r.SocketPath(s.Name, id)), q(r.SocketLog(s.Name, id))
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`[ -d ` + q(r.ReleaseDir(id)) + ` ] && [ ! -L ` + q(r.ReleaseDir(id)) + ` ] || die ` + q("release "+id+" does not exist on this host"))
	if reuse {
		sc.line(`if [ -f ` + p + ` ] && alive $(cat ` + p + `) && [ -S ` + sock + ` ]; then note reused; exit 0; fi`)
	}
	sc.line(`for d in "$R/run" "$R/.ferry/proc"; do [ ! -L "$d" ] || die "$d is a symlink; ferry does not follow links in its own directories"; done`)
	sc.line(`mkdir -p "$R/run" "$R/.ferry/proc" || die "cannot create $R/run"`)
	sc.line(`command -v setsid >/dev/null 2>&1 || die "setsid is not installed on this host: ferry needs it (util-linux or BusyBox) to run ` + s.Name + ` detached"`)
	// A socket left by an earlier process of this release (stopped, or draining with its
	// listener closed) would make the new one fail to bind. A draining one has its own file.
	sc.line(`rm -f ` + sock + ` ` + p)
	var cmd strings.Builder
	cmd.WriteString(`env`)
	for _, kv := range env {
		cmd.WriteString(" " + q(kv))
	}
	cmd.WriteString(` setsid sh -c ` + q(r.Expand(s, s.Start, id)) + ` </dev/null >>` + log + ` 2>&1 &`)
	// A simple command in the background execs env, env execs setsid, and setsid, not a
	// process group leader (no job control here), execs sh in place: $! is the process, and
	// its session and process group.
	sc.line(`cd ` + q(r.ReleaseDir(id)) + ` || die "cannot enter release ` + id + `"`)
	sc.line(cmd.String())
	sc.line(`p=$!; st=$(sed 's/^.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f20); printf '%s %s\n' "$p" "$st" >` + p + `.tmp && mv -f ` + p + `.tmp ` + p + ` || die "cannot record the process of ` + s.Name + `"`)
	out, err := sc.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	return &ProcessStart{Reused: len(out) > 0 && out[0] == "reused"}, nil
}

// MarkSupervised records that release id's process of a supervised service was started, so
// that it is stopped (with its stop command) once it is neither current nor linked.
func (r *Root) MarkSupervised(ctx context.Context, s Socket, id string) error {
	p := q(r.procFile(s.Name, id))
	sc := r.newScript()
	sc.line(`for d in "$R/run" "$R/.ferry/proc"; do [ ! -L "$d" ] || die "$d is a symlink; ferry does not follow links in its own directories"; done`)
	sc.line(`mkdir -p "$R/run" "$R/.ferry/proc" && echo supervised >` + p + ` || die "cannot record the process of ` + s.Name + `"`)
	_, err := sc.run(ctx)
	return err
}

// ErrProcessExited is wrapped by ProcessCheck's error when the process is gone.
var ErrProcessExited = errors.New("the process exited")

// ProcessCheck fails with ErrProcessExited, and the last lines of the process's output, when
// release id's detached process of s no longer runs. listening reports whether its socket
// exists.
func (r *Root) ProcessCheck(ctx context.Context, s Socket, id string) (listening bool, err error) {
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`if [ -S ` + q(r.SocketPath(s.Name, id)) + ` ]; then note listening; fi`)
	if !s.Supervised() {
		sc.line(`if ! alive $(cat ` + q(r.procFile(s.Name, id)) + ` 2>/dev/null); then note exited; tail -n 20 ` + q(r.SocketLog(s.Name, id)) + ` 2>/dev/null; fi`)
	}
	out, err := r.Host.Script(ctx, sc.String())
	if err != nil {
		return false, fmt.Errorf("check %s: %w", s.Name, scriptError(err))
	}
	o, listening := strings.CutPrefix(string(out), "listening\x00")
	if rest, ok := strings.CutPrefix(o, "exited\x00"); ok {
		return listening, &ProcessError{Service: s.Name, Log: r.SocketLog(s.Name, id), Output: rest, Err: ErrProcessExited}
	}
	return listening, nil
}

// ProcessError is a process that did not come up, with the end of its output.
type ProcessError struct {
	Service string
	Log     string // where the whole output is
	Output  string
	Err     error
}

func (e *ProcessError) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("%s: %v (no output in %s)", e.Service, e.Err, e.Log)
	}
	return fmt.Sprintf("%s: %v; the end of its output (%s):\n%s", e.Service, e.Err, e.Log, out)
}

func (e *ProcessError) Unwrap() error { return e.Err }

// ProcessOutput returns the last lines of release id's process output.
func (r *Root) ProcessOutput(ctx context.Context, s Socket, id string) string {
	sc := r.newScript()
	sc.line(`tail -n 20 ` + q(r.SocketLog(s.Name, id)) + ` 2>/dev/null; true`)
	out, _ := r.Host.Script(ctx, sc.String())
	return string(out)
}

// killScript kills release id's detached processes at once, and waits (up to 2 s) until they
// are gone: they never served (a release that failed before its swap). A supervised one is
// stopped with its command, in the background.
func (r *Root) killScript(s *script, id string) {
	if len(r.Sockets) > 0 {
		s.line(procFunctions)
	}
	for _, so := range r.Sockets {
		p := q(r.procFile(so.Name, id))
		if so.Supervised() {
			s.line(`if [ -f ` + p + ` ]; then ` + r.supervisorStop(so, id) + `; fi`)
			continue
		}
		s.line(`if [ -f ` + p + ` ] && set -- $(cat ` + p + `) && alive "$1" "$2"; then kill -KILL "-$1" 2>/dev/null; ` +
			`i=0; while alive "$1" "$2" && [ $i -lt 200 ]; do sleep 0.01 2>/dev/null || sleep 1; i=$((i+1)); done; fi`)
		s.line(`rm -f ` + p + ` ` + q(r.SocketPath(so.Name, id)) + ` ` + q(r.SocketLog(so.Name, id)))
	}
}

// supervisorStop runs a supervised process's stop command in the background, then forgets it.
func (r *Root) supervisorStop(so Socket, id string) string {
	p := q(r.procFile(so.Name, id))
	return `mv -f ` + p + ` ` + p + `.stopping.$$ && ( cd "$R" && sh -c ` + q(r.Expand(so, so.Stop, id)) + ` </dev/null >>` + q(r.SocketLog(so.Name, id)) + ` 2>&1; rm -f ` + p + `.stopping.$$ ) </dev/null >/dev/null 2>&1 &`
}

// stopStaleScript stops every process of a socket service whose release is neither current's
// nor the one its stable link points at: its signal, then SIGKILL once its drain is over. The
// drain runs in the background on the host. Only a run that holds the lock may run it.
//
// A process asked to stop has its file renamed to <file>.stopping.<pid>, which only its drain
// removes: a process of the same release started meanwhile (a rollback to it) has the name
// <file> to itself. The drain leaves the socket: the process removes it, or the next start.
func (r *Root) stopStaleScript(s *script) {
	if len(r.Sockets) == 0 {
		return
	}
	s.line(procFunctions)
	s.line(`cur=$(readlink "$R/current" 2>/dev/null); cur=${cur#releases/}`)
	for _, so := range r.Sockets {
		prefix := r.Dir + "/.ferry/proc/" + so.Name + "."
		tenths := strconv.FormatInt(int64(so.Drain/(100*time.Millisecond)), 10)
		s.line(`lnk=$(readlink ` + q(r.StableSocket(so.Name)) + ` 2>/dev/null); lnk=${lnk#run/` + so.Name + `.}; lnk=${lnk%.sock}`)
		s.line(`for p in ` + q(prefix) + `*; do`)
		s.line(`  case "$p" in *.stopping.*|*.tmp|*"*") continue ;; esac`)
		s.line(`  id=${p#` + q(prefix) + `}; [ "$id" != "$cur" ] && [ "$id" != "$lnk" ] || continue`)
		s.line(`  sock="$R/run/` + so.Name + `.$id.sock"`)
		if so.Supervised() {
			s.line(`  mv -f "$p" "$p.stopping.$$" || continue`)
			s.line(`  ( cd "$R" && env FERRY_RELEASE="$id" FERRY_SOCKET="$sock" sh -c ` + q(strings.NewReplacer("{{socket}}", "$sock", "{{release}}", "$id").Replace(so.Stop)) +
				` </dev/null >>"$R/run/` + so.Name + `.$id.log" 2>&1; rm -f "$p.stopping.$$" ) </dev/null >/dev/null 2>&1 &`)
			s.line(`  note stopped ` + q(so.Name+" ") + `"$id"`)
		} else {
			s.line(`  set -- $(cat "$p" 2>/dev/null)`)
			s.line(`  if alive "$1" "$2"; then`)
			s.line(`    mv -f "$p" "$p.stopping.$1" || continue; kill -` + so.Signal + ` "-$1" 2>/dev/null; note stopped ` + q(so.Name+" ") + `"$id"`)
			s.line(`    ( i=0; while alive "$1" "$2" && [ $i -lt ` + tenths + ` ]; do sleep 0.1 2>/dev/null || { sleep 1; i=$((i+9)); }; i=$((i+1)); done; ` +
				`alive "$1" "$2" && kill -KILL "-$1" 2>/dev/null; rm -f "$p.stopping.$1" ) </dev/null >/dev/null 2>&1 &`)
			s.line(`  else rm -f "$p" "$sock"; fi`)
		}
		s.line(`done`)
	}
}

// runningScript adds to a removal of release id: keep the release while a detached process of
// it still runs (one that drains its last requests, or one that never stopped); a later run
// removes it.
func (r *Root) runningScript(id string) string {
	var b strings.Builder
	b.WriteString(procFunctions + "; busy=")
	for _, so := range r.Sockets {
		if so.Supervised() {
			continue
		}
		p := q(r.procFile(so.Name, id))
		b.WriteString(`; for f in ` + p + ` ` + p + `.stopping.*; do if [ -f "$f" ] && alive $(cat "$f"); then busy=` + q(so.Name) + `; fi; done`)
	}
	return b.String()
}

// ProcessRuns reports whether release id has a detached process of s running (for tests and
// ferry status).
func (r *Root) ProcessRuns(ctx context.Context, s Socket, id string) (bool, error) {
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`if alive $(cat ` + q(r.procFile(s.Name, id)) + ` 2>/dev/null); then note yes; fi`)
	out, err := sc.run(ctx)
	return len(out) > 0, err
}

// linkSocketsScript points each socket service's stable link at release id's socket, by a
// rename over it, when that socket exists (a release from before the service had none).
func (r *Root) linkSocketsScript(s *script, id string) {
	for _, so := range r.Sockets {
		sock := "run/" + so.Name + "." + id + ".sock"
		tmp := r.StableSocket(so.Name) + "." + randomSuffix()
		s.line(`if [ -S "$R/"` + q(sock) + ` ]; then ln -s ` + q(sock) + ` ` + q(tmp) + ` && mv -fT ` + q(tmp) + ` ` + q(r.StableSocket(so.Name)) +
			` || { rm -f ` + q(tmp) + `; die ` + q("cannot point "+so.Name+".sock at release "+id) + `; }; fi`)
	}
}

// KillProcesses kills release id's processes that never served (a rollback whose target's
// process did not answer).
func (r *Root) KillProcesses(ctx context.Context, id string) error {
	s := r.newScript()
	r.killScript(s, id)
	_, err := s.run(ctx)
	return err
}
