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
// A release's process serves on <root>/run/<name>.<release>.sock, or, when an earlier process of
// the same release may still remove that path as it closes (it drains after a deploy, and a
// rollback starts the release again), on a path of its own, run/<name>.<release>.<n>.sock. The
// swap renames a new link over <root>/<name>.sock in the request that logs current's rename, so
// both move together. When a run that holds the lock ends, every process that is neither
// current's nor the one <name>.sock points at is stopped: its stop signal to its process group,
// then SIGKILL after Drain, in the background on the host, so that a deploy does not wait.
//
// Detached (Stop empty), ferry starts the process in a session and process group of its own,
// with its output appended to <root>/run/<name>.<release>.log, and keeps "<pid> <start time>
// <socket>" in .ferry/proc/<name>.<release>: the start time tells a reused pid from the group's
// leader, and the group is alive while any of its processes is (a start command that forks
// its server is followed too). Supervised (Stop set), Start and Stop are the supervisor's
// commands (systemctl), and the file says "supervised".
type Socket struct {
	Name   string
	Start  string
	Stop   string
	Signal string // TERM, …
	Drain  time.Duration
}

// Supervised reports whether a supervisor (systemd) runs the process rather than ferry.
func (s Socket) Supervised() bool { return s.Stop != "" }

// SocketPath is where release id's process of service name serves, unless a second process of
// the release had to take a path of its own (see StartProcess).
func (r *Root) SocketPath(name, id string) string { return r.Dir + "/" + socketRel(name, id) }

func socketRel(name, id string) string { return "run/" + name + "." + id + ".sock" }

// SocketLog is where the output of release id's detached process of service name goes.
func (r *Root) SocketLog(name, id string) string { return r.Dir + "/run/" + name + "." + id + ".log" }

// StableSocket is the link the web server connects to.
func (r *Root) StableSocket(name string) string { return r.Dir + "/" + name + ".sock" }

func (r *Root) procFile(name, id string) string { return r.Dir + "/.ferry/proc/" + name + "." + id }

// procFunctions are the shell functions of the scripts that start, check and stop processes.
//
// alive PID START: the process group PID led, when it started at START, still has a process
// that is not a zombie. PID is a number above 1 written without leading zeros (kill -1, or
// kill -01, would signal every process; awk would read 01 as group 1). A pid in use by a process that started at another time means ours is
// gone (a pid is not reused while its group has members).
//
// linked NAME: the release <root>/NAME.sock points at ("" for none).
//
// stop1 FILE SIGNAL TENTHS: stop the process group FILE records: FILE is renamed to
// FILE.stopping.<pid> (its time is when the stop began), and in the background the group gets
// SIGNAL a second later (a connection the web server opened just before the swap has sent its
// request by then: an app that stops reading at the signal would drop it), then SIGKILL after
// TENTHS tenths of a second. All of it starts before anything is printed: a run whose
// connection is gone still finishes it. While it waits it asks kill -0 of the group, which
// costs nothing; a group's number is not reused while one of its processes is left.
const procFunctions = `alive() { [ -n "$2" ] || return 1; case $1 in ''|*[!0-9]*|0*|1) return 1 ;; esac; a=$(sed 's/^.*) //' /proc/$1/stat 2>/dev/null); ` +
	`if [ -n "$a" ] && [ "$(printf '%s\n' "$a" | cut -d' ' -f20)" != "$2" ]; then return 1; fi; ` +
	`cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g && $1 != "Z") { f = 1; exit } } END { exit !f }'; }
linked() { l=$(readlink "$R/$1.sock" 2>/dev/null) || return 0; l=${l#run/$1.}; printf '%s' "${l%%.*}"; }
stop1() { set -- "$1" "$2" "$3" $(cat "$1" 2>/dev/null); alive "$4" "$5" || { rm -f "$1"; case $6 in run/*/*|*..*) ;; run/?*) rm -f "$R/$6" ;; esac; return 1; }; ` +
	`mv -f "$1" "$1.stopping.$4" && touch "$1.stopping.$4" || return 1; ` +
	`( f="$1.stopping.$4"; t=$3; i=0; sleep 1; alive "$4" "$5" && kill -$2 "-$4" 2>/dev/null; while kill -0 "-$4" 2>/dev/null && [ $i -lt $t ]; do sleep 0.1 2>/dev/null || { sleep 1; i=$((i+9)); }; i=$((i+1)); done; ` +
	`alive "$4" "$5" && kill -KILL "-$4" 2>/dev/null; rm -f "$f" ) </dev/null >/dev/null 2>&1 & }`

// envScript is the environment of a socket service's command for release id, as env(1)
// arguments: the hooks' own. FERRY_SOCKET is added by the caller.
func (r *Root) envScript(s Socket, id, previous, hostName string) string {
	var b strings.Builder
	b.WriteString("env")
	for _, kv := range append(r.Env(id, previous, hostName), "FERRY_SERVICE="+s.Name) {
		b.WriteString(" " + q(kv))
	}
	return b.String()
}

// SocketEnv is the environment of a supervised socket service's start command for release id.
func (r *Root) SocketEnv(s Socket, id, previous, hostName string) []string {
	return append(r.Env(id, previous, hostName), "FERRY_SOCKET="+r.SocketPath(s.Name, id), "FERRY_SERVICE="+s.Name)
}

// Expand replaces {{socket}} and {{release}} in a supervised service's command for release id.
func (r *Root) Expand(s Socket, cmd, id string) string {
	return strings.NewReplacer("{{socket}}", r.SocketPath(s.Name, id), "{{release}}", id).Replace(cmd)
}

// expandEnv replaces {{socket}} and {{release}} with the variables that hold them, for a command
// run where they are set.
func expandEnv(cmd string) string {
	return strings.NewReplacer("{{socket}}", "${FERRY_SOCKET}", "{{release}}", "${FERRY_RELEASE}").Replace(cmd)
}

// ProcessStart is what StartProcess did.
type ProcessStart struct {
	Socket string // the path the process serves on
	Reused bool   // the release's process was already running, never asked to stop
}

// StartProcess starts release id's process of s, detached; a supervised service's start is run
// by the caller (see MarkSupervised). With reuse, a process of the release that runs and was
// never asked to stop is kept instead (a rollback to the release just left).
func (r *Root) StartProcess(ctx context.Context, s Socket, id, previous, hostName string, reuse bool) (*ProcessStart, error) {
	p, log := q(r.procFile(s.Name, id)), q(r.SocketLog(s.Name, id))
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`[ -d ` + q(r.ReleaseDir(id)) + ` ] && [ ! -L ` + q(r.ReleaseDir(id)) + ` ] || die ` + q("release "+id+" does not exist on this host"))
	if reuse {
		sc.line(`if [ -f ` + p + ` ]; then set -- $(cat ` + p + `); if alive "$1" "$2" && [ -S "$R/$3" ]; then note reused "$3"; exit 0; fi; fi`)
	}
	sc.line(`for d in "$R/run" "$R/.ferry/proc"; do [ ! -L "$d" ] || die "$d is a symlink; ferry does not follow links in its own directories"; done`)
	sc.line(`mkdir -p "$R/run" "$R/.ferry/proc" || die "cannot create $R/run"`)
	sc.line(`command -v setsid >/dev/null 2>&1 || die "setsid is not installed on this host: ferry needs it (util-linux or BusyBox) to run ` + s.Name + ` detached"`)
	// A process of the release that runs (a rollback to a release whose socket is gone) is
	// stopped: it would not be followed any more.
	sc.line(`[ ! -f ` + p + ` ] || stop1 ` + p + ` ` + s.Signal + ` ` + tenths(s.Drain))
	// The release's own socket path, unless an earlier process of it may still remove that
	// path when it closes (it drains), or the stable link points at it.
	sc.line(`S=` + q(socketRel(s.Name, id)) + `; busy=`)
	sc.line(`for f in ` + p + `.stopping.*; do [ -f "$f" ] && alive $(cat "$f") && busy=1; done`)
	sc.line(`if [ -n "$busy" ] || [ "$(readlink "$R/"` + q(s.Name+".sock") + ` 2>/dev/null)" = "$S" ]; then S=` + q("run/"+s.Name+"."+id+".") + `$$.sock; fi`)
	sc.line(`rm -f "$R/$S"; (umask 077; : >>` + log + `)`)
	sc.line(`cd ` + q(r.ReleaseDir(id)) + ` || die "cannot enter release ` + id + `"`)
	// A simple command in the background execs env, env execs setsid, and setsid, not a
	// process group leader (no job control here), execs sh in place: $! is the process, and
	// the leader of its session and process group.
	sc.line(r.envScript(s, id, previous, hostName) + ` FERRY_SOCKET="$R/$S" setsid sh -c ` + q(expandEnv(s.Start)) + ` </dev/null >>` + log + ` 2>&1 &`)
	sc.line(`p=$!; st=$(sed 's/^.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f20); printf '%s %s %s\n' "$p" "$st" "$S" >` + p + `.tmp && mv -f ` + p + `.tmp ` + p + ` || die "cannot record the process of ` + s.Name + `"`)
	sc.line(`note started "$S"`)
	f, err := sc.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	if len(f) < 2 {
		return nil, fmt.Errorf("start %s: no answer from the host", s.Name)
	}
	return &ProcessStart{Socket: r.Dir + "/" + f[1], Reused: f[0] == "reused"}, nil
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
var ErrProcessExited = errors.New("the process exited (start must keep the server in the foreground: exec it, without a daemon flag)")

// ProcessCheck fails with ErrProcessExited, and the last lines of the process's output, when
// release id's detached process of s no longer runs. listening reports whether socket exists.
func (r *Root) ProcessCheck(ctx context.Context, s Socket, id, socket string) (listening bool, err error) {
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`if [ -S ` + q(socket) + ` ]; then note listening; fi`)
	if !s.Supervised() {
		sc.line(`if ! alive $(cat ` + q(r.procFile(s.Name, id)) + ` 2>/dev/null); then note exited; tail -n 20 ` + q(r.SocketLog(s.Name, id)) + ` 2>/dev/null; fi`)
	}
	out, err := r.Host.Script(ctx, sc.String())
	if err != nil {
		return false, fmt.Errorf("check %s: %w", s.Name, scriptError(err))
	}
	o, listening := strings.CutPrefix(string(out), "listening\x00")
	if rest, ok := strings.CutPrefix(o, "exited\x00"); ok {
		return listening, &ProcessError{Service: s.Name, Output: rest, Err: ErrProcessExited}
	}
	return listening, nil
}

// ProcessError is a process that did not come up, with the end of its output.
type ProcessError struct {
	Service string
	Output  string
	Err     error
}

func (e *ProcessError) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("%s: %v (it printed nothing)", e.Service, e.Err)
	}
	return fmt.Sprintf("%s: %v; the end of its output:\n%s", e.Service, e.Err, out)
}

func (e *ProcessError) Unwrap() error { return e.Err }

// ProcessOutput returns the last lines of release id's process output.
func (r *Root) ProcessOutput(ctx context.Context, s Socket, id string) string {
	sc := r.newScript()
	sc.line(`tail -n 20 ` + q(r.SocketLog(s.Name, id)) + ` 2>/dev/null; true`)
	out, _ := r.Host.Script(ctx, sc.String())
	return string(out)
}

func tenths(d time.Duration) string { return strconv.FormatInt(int64(d/(100*time.Millisecond)), 10) }

// killScript kills release id's processes that never served: a release that failed before its
// swap, or a rollback target that did not answer. It waits (up to 2 s) until they are gone. A
// process that is current's or that the stable link points at is never killed; a supervised
// one is stopped with its command, in the background. Logs are kept for the release's removal.
func (r *Root) killScript(s *script, id string) {
	if len(r.Sockets) == 0 {
		return
	}
	s.line(procFunctions)
	s.line(`cur=$(readlink "$R/current" 2>/dev/null); cur=${cur#releases/}`)
	for _, so := range r.Sockets {
		p := q(r.procFile(so.Name, id))
		s.line(`if [ -f ` + p + ` ] && [ "$cur" != ` + q(id) + ` ] && [ "$(linked ` + q(so.Name) + `)" != ` + q(id) + ` ]; then set -- $(cat ` + p + `)`)
		if so.Supervised() {
			s.line(`  mv -f ` + p + ` ` + p + `.stopping.$$ && ( cd "$R" && env FERRY_RELEASE=` + q(id) + ` FERRY_RELEASE_DIR=` + q(r.ReleaseDir(id)) + ` FERRY_ROOT="$R" FERRY_SHARED_DIR="$R/shared" FERRY_SERVICE=` + q(so.Name) + ` FERRY_SOCKET=` + q(r.SocketPath(so.Name, id)) + ` sh -c ` + q(expandEnv(so.Stop)) +
				` </dev/null >>` + q(r.SocketLog(so.Name, id)) + ` 2>&1; rm -f ` + p + `.stopping.$$ ) </dev/null >/dev/null 2>&1 &`)
		} else {
			s.line(`  if alive "$1" "$2"; then kill -KILL "-$1" 2>/dev/null; i=0; while kill -0 "-$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.01 2>/dev/null || sleep 1; i=$((i+1)); done; fi`)
			s.line(`  rm -f ` + p + `; [ -z "$3" ] || rm -f "$R/$3"`)
		}
		s.line(`fi`)
	}
}

// stopStaleScript stops every process of a socket service whose release is neither current's
// nor the one its stable link points at (see Socket), and one of a socket service no longer
// in the config (SIGTERM, 30 s). A drain whose background process is gone (its run's connection
// dropped before it started; a reboot) is finished here. Only a run that holds the lock may run
// it: another run's new process is neither current nor linked until its swap.
func (r *Root) stopStaleScript(s *script) {
	s.line(`if [ -d "$R/.ferry/proc" ] && [ ! -L "$R/.ferry/proc" ]; then`)
	s.line(`trap '' PIPE`)
	s.line(procFunctions)
	s.line(`cur=$(readlink "$R/current" 2>/dev/null); cur=${cur#releases/}`)
	s.line(`for p in "$R/.ferry/proc/"*; do`)
	s.line(`  [ -f "$p" ] || continue; b=${p##*/}; name=${b%%.*}; id=${b#*.}`)
	// How each service stops: its signal, its drain, its supervisor's command.
	var how strings.Builder
	how.WriteString(`known=1; case $name in`)
	for _, so := range r.Sockets {
		how.WriteString(` ` + q(so.Name) + `) sig=` + so.Signal + `; t=` + tenths(so.Drain) + `; stop=` + q(expandEnv(so.Stop)) + ` ;;`)
	}
	how.WriteString(` *) sig=TERM; t=` + tenths(30*time.Second) + `; stop=; known= ;; esac`)
	s.line(`  case $b in *.tmp) continue ;; *.stopping.*)`)
	// A drain that is over but whose process still runs: its drainer is gone.
	s.line(`    set -- $(cat "$p" 2>/dev/null); if [ "$1" = supervised ]; then [ -z "$(find "$p" -mmin +10 2>/dev/null)" ] || rm -f "$p"; continue; fi`)
	s.line(`    if ! alive "$1" "$2"; then rm -f "$p"; continue; fi`)
	s.line(`    id=${id%%.stopping.*}; ` + how.String())
	s.line(`    age=$(( $(date +%s) - $(stat -c %Y "$p" 2>/dev/null || date +%s) )); if [ $(( age * 10 )) -gt $(( t + 50 )) ]; then kill -KILL "-$1" 2>/dev/null; rm -f "$p"; elif [ $age -ge 2 ]; then kill -$sig "-$1" 2>/dev/null; fi; continue ;; esac`)
	s.line(`  ` + how.String())
	// A service no longer configured here is stopped whatever serves, and its link removed.
	s.line(`  if [ -n "$known" ]; then [ "$id" != "$cur" ] && [ "$id" != "$(linked "$name")" ] || continue`)
	s.line(`  else note warn "service $name is not in ferry.yaml (on this host): its process of release $id is stopped"; [ "$(linked "$name")" != "$id" ] || rm -f "$R/$name.sock"; fi`)
	s.line(`  if [ "$(cat "$p" 2>/dev/null)" = supervised ]; then`)
	s.line(`    if [ -z "$stop" ]; then rm -f "$p"; note warn "service $name of release $id was started by a supervisor, and ferry.yaml has no stop command for it now: stop it by hand"; continue; fi`)
	s.line(`    mv -f "$p" "$p.stopping.$$" && ( cd "$R" && env FERRY_RELEASE="$id" FERRY_RELEASE_DIR="$R/releases/$id" FERRY_ROOT="$R" FERRY_SHARED_DIR="$R/shared" FERRY_SERVICE="$name" FERRY_SOCKET="$R/run/$name.$id.sock" sh -c "$stop" </dev/null >>"$R/run/$name.$id.log" 2>&1; rm -f "$p.stopping.$$" ) </dev/null >/dev/null 2>&1 &`)
	s.line(`    note stopped "$name $id"`)
	s.line(`  elif stop1 "$p" "$sig" "$t"; then note stopped "$name $id"; fi`)
	s.line(`done`)
	s.line(`trap - PIPE`)
	s.line(`fi`)
}

// runningScript adds to a removal of release id: busy is set when a detached process of it
// still runs (one that drains its last requests, or one that never stopped). A later run
// removes the release.
func (r *Root) runningScript(id string) string {
	return procFunctions + "\n" + `busy=; if [ -d "$R/.ferry/proc" ] && [ ! -L "$R/.ferry/proc" ]; then for f in "$R/.ferry/proc/"*.` + q(id) + ` "$R/.ferry/proc/"*.` + q(id) + `.stopping.*; do ` +
		`[ -f "$f" ] || continue; set -- $(cat "$f"); b=${f##*/}; case $b in *.stopping.*) [ "$1" != supervised ] || busy=${b%%.*} ;; esac; if alive "$1" "$2"; then busy=${b%%.*}; fi; done; fi`
}

// ProcessRuns reports whether release id has a detached process of s running.
func (r *Root) ProcessRuns(ctx context.Context, s Socket, id string) (bool, error) {
	sc := r.newScript()
	sc.line(procFunctions)
	sc.line(`if alive $(cat ` + q(r.procFile(s.Name, id)) + ` 2>/dev/null); then note yes; fi`)
	out, err := sc.run(ctx)
	return len(out) > 0, err
}

// linkSocketsScript points each socket service's stable link at release id's socket, by a
// rename over it. A release without a running process of the service (one from before the
// service was a socket service) takes the link away: the release it replaces has the process.
func (r *Root) linkSocketsScript(s *script, id string) {
	if len(r.Sockets) == 0 {
		return
	}
	s.line(procFunctions)
	for _, so := range r.Sockets {
		p := q(r.procFile(so.Name, id))
		tmp := r.StableSocket(so.Name) + "." + randomSuffix()
		// A process that answered before the swap and died since fails the swap (the engine
		// swaps current back); a release that never had one takes the link away.
		s.line(`k=; if [ -f ` + p + ` ]; then set -- $(cat ` + p + `); if [ "$1" = supervised ]; then k=` + q(socketRel(so.Name, id)) + `; elif alive "$1" "$2"; then k=$3; else die ` +
			q(so.Name+" of release "+id+" exited after it answered; see "+r.SocketLog(so.Name, id)) + `; fi; fi`)
		s.line(`if [ -n "$k" ] && [ -S "$R/$k" ]; then ln -s "$k" ` + q(tmp) + ` && mv -fT ` + q(tmp) + ` ` + q(r.StableSocket(so.Name)) +
			` || { rm -f ` + q(tmp) + `; die ` + q("cannot point "+so.Name+".sock at release "+id) + `; }; elif [ -n "$k" ]; then die ` +
			q(so.Name+" of release "+id+" has no socket any more") + `; else rm -f ` + q(r.StableSocket(so.Name)) + `; fi`)
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
