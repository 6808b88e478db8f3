#!/bin/sh
# handoff.sh: replace a TCP app server by the new release's without closing its port, for an
# app that cannot serve on ferry's socket (switch: socket, the better way: see ferry.yaml). The
# app must listen with SO_REUSEPORT (examples/app/main.go does when FERRY_SOCKET is unset) and
# finish its requests in flight on SIGTERM.
#
# Use it as a plain service's reload, shipped with the build (cp handoff.sh dist/):
#
#   services:
#     - name: app
#       reload: PORT=8080 sh handoff.sh          # or: PORT=8080 sh handoff.sh ./app --flag
#
# ferry runs reload after every swap of current (a deploy, a rollback, and the swap back of a
# deploy whose health check failed), in the new current release, with FERRY_ROOT and
# FERRY_RELEASE set. Use reload, not restart: this script starts a new process every time, so
# it re-reads .env anyway. Add a health: check that names the release (contains:
# "{{release}}"): it is what proves the new process answers (see below).
#
# What it does:
#   1. starts the command (./app by default, with PORT) in this directory, detached: in a
#      session of its own (setsid), stdin /dev/null, output appended to
#      $FERRY_ROOT/run/<name>.<release>.log,
#      and records it in $FERRY_ROOT/run/<name>.pid, which lists every process this script
#      started that may still run, the serving one first ("pid starttime" a line);
#   2. waits until a process of that session holds a TCP socket listening on $PORT (read from
#      /proc: the session's file descriptors against /proc/<pid>/net/tcp and tcp6), for up to
#      HANDOFF_READY_TIMEOUT seconds (30). If it exits first or takes too long, it is killed,
#      the end of its log is printed, and the script fails: the old process was not touched,
#      and ferry swaps current back (and runs this script again, in the previous release);
#   3. sends SIGTERM to every older process of the list (to its process group, once its pid
#      and start time prove it is still ours), waits up to HANDOFF_DRAIN seconds (30) for its
#      session to exit, then SIGKILLs what is left. The deploy waits for this drain.
#
# What it guarantees (on Linux, with an app that sets SO_REUSEPORT and handles SIGTERM):
#   - the port never stops listening: the new listener joins the port before the old one
#     closes, so no connection is refused;
#   - the requests the old process has begun to serve finish (up to HANDOFF_DRAIN);
#   - when it exits 0, the new process listens and every older one is gone: one process runs;
#   - a new process that does not come up never replaces the old one;
#   - a run killed halfway (ferry's hook_timeout) leaves no process unrecorded, but for the
#     milliseconds between starting the new one and writing the list: the next run stops
#     whatever the list still holds once its own process listens.
#
# What it does not guarantee:
#   - connections queued on the old listener when it closes are reset. From the moment the new
#     process listens, the kernel spreads new connections between both listeners; those the
#     old one has completed but not yet accepted when SIGTERM makes it close its listener are
#     reset, and nginx answers 502 for them. bench/zdd measures how many (see its app table).
#     On Linux 5.14 or later, `sysctl -w net.ipv4.tcp_migrate_req=1` makes the kernel move
#     them to the new listener instead;
#   - requests the old process reads after its SIGTERM handling began can be dropped by the
#     app itself: Go's http.Server.Shutdown closes, without an answer, a connection whose
#     request it reads after Shutdown started (nginx: "upstream prematurely closed
#     connection", 502), and connections arrive at the old listener until it closes. An app
#     avoids it by closing its listener first, letting the connections it accepted have their
#     request read, and only then shutting down (measured in bench/zdd with -app-bin);
#   - "listening" is not "answering right": with no curl on the host, and with SO_REUSEPORT
#     sending a request to either process, the script cannot ask the new process itself. It
#     proves that the process bound the port and still runs; ferry's health check, made once
#     the old process is gone, proves the answers (and rolls back). An app that must warm up
#     (connect to its database) before it can serve should bind its port only once ready,
#     since the kernel gives it connections as soon as it listens;
#   - it needs Linux's /proc, setsid (util-linux or BusyBox), and a fractional sleep (GNU or
#     BusyBox; else it polls once a second). Both processes must run as the same user (the
#     kernel refuses SO_REUSEPORT across users: the new one then fails with "address already
#     in use" and the old one keeps serving), and this script must run as that user too, to
#     read the new process's file descriptors;
#   - nothing supervises the process: if it crashes, or the host reboots, nothing starts it
#     again. Under systemd, prefer switch: socket with app@.service;
#   - a request longer than HANDOFF_DRAIN is cut by SIGKILL; an nginx upstream `keepalive`
#     pool keeps connections to the old process, which it closes at SIGTERM (keep nginx's
#     default: a new upstream connection per request);
#   - ferry's lock keeps two deploys from running it at once; do not run it by hand during a
#     deploy.
#
# Settings (environment): PORT (required), HANDOFF_NAME (app: names the pid file and the
# logs), HANDOFF_READY_TIMEOUT (30), HANDOFF_DRAIN (30), in whole seconds. Logs of releases no
# longer on disk are removed.
set -u

name=${HANDOFF_NAME:-app}
port=${PORT:-}
ready_timeout=${HANDOFF_READY_TIMEOUT:-30}
drain=${HANDOFF_DRAIN:-30}
root=${FERRY_ROOT:-}
release=${FERRY_RELEASE:-}
[ $# -gt 0 ] || set -- ./app

say() { printf 'handoff: %s\n' "$*"; }
die() {
	printf 'handoff: %s\n' "$*" >&2
	exit 1
}

[ -n "$root" ] && [ -n "$release" ] || die "FERRY_ROOT and FERRY_RELEASE are not set: run this script as a ferry service"
case $port in '' | *[!0-9]*) die "set PORT to the TCP port the app listens on (PORT=${port})" ;; esac
for v in "$ready_timeout" "$drain"; do
	case $v in '' | *[!0-9]*) die "HANDOFF_READY_TIMEOUT and HANDOFF_DRAIN are whole seconds, not '$v'" ;; esac
done
command -v setsid >/dev/null 2>&1 || die "setsid is not installed (util-linux or BusyBox)"
[ -d /proc/self/fd ] || die "/proc is not mounted: this script needs Linux's /proc"

run=$root/run
list=$run/$name.pid
log=$run/$name.$release.log
[ ! -L "$run" ] || die "$run is a symlink"
mkdir -p "$run" || die "cannot create $run"
hexport=$(printf '%04X' "$port")

nap() { sleep "$1" 2>/dev/null || sleep 1; }

# starttime PID prints field 22 of /proc/PID/stat (read after the command name, which may
# hold spaces); it fails for a process that is gone or a zombie.
starttime() {
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	set -- ${st##*) }
	[ "$1" != Z ] || return 1
	printf '%s\n' "${20}"
}

# members SID prints the pids of the live (not zombie) processes of session SID.
members() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v sid="$1" '{ pid = $1; sub(/^.*\) /, ""); if ($4 == sid && $1 != "Z") print pid }'
}

# listening SID: whether a process of session SID holds a TCP socket listening on $port.
listening() {
	pids=$(members "$1")
	[ -n "$pids" ] || return 1
	inodes=$(for p in $pids; do ls -l "/proc/$p/fd" 2>/dev/null; done | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
	[ -n "$inodes" ] || return 1
	set -- $pids
	ns=/proc/$1/net
	set --
	for f in "$ns/tcp" "$ns/tcp6"; do
		[ -r "$f" ] && set -- "$@" "$f"
	done
	[ $# -gt 0 ] || return 1
	# 0A is TCP_LISTEN; local_address is HEXADDR:HEXPORT; the inode is field 10.
	awk -v port=":$hexport" -v inodes="$inodes" '
		BEGIN { n = split(inodes, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		$4 == "0A" && substr($2, length($2) - 4) == port && ($10 in want) { found = 1 }
		END { exit !found }' "$@"
}

# stop PID START: SIGTERM to the process group of PID if it is still the process that started
# at START, then wait up to $drain seconds for its session to end, then SIGKILL what is left.
stop() {
	[ "$(starttime "$1")" = "$2" ] || return 0
	kill -TERM "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
	deadline=$(($(date +%s) + drain))
	while [ -n "$(members "$1")" ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "pid $1 still runs after ${drain}s: SIGKILL"
			kill -KILL "-$1" 2>/dev/null
			for p in $(members "$1"); do kill -KILL "$p" 2>/dev/null; done
			break
		fi
		nap 0.1
	done
	say "pid $1 stopped"
}

# record LINES... writes the list atomically.
record() {
	printf '%s\n' "$@" | sed '/^$/d' >"$list.tmp.$$" && mv -f "$list.tmp.$$" "$list" || die "cannot write $list"
}

# The processes of earlier runs that still run: normally one, the serving one.
old=
if [ -f "$list" ]; then
	while read -r pid start; do
		[ -n "$pid" ] && [ "$(starttime "$pid")" = "$start" ] && old="$old$pid $start
"
	done <"$list"
fi

# 1. Start the new process, in a session of its own. A background simple command forks once;
# the child, not a process group leader (no job control here), execs setsid, which calls
# setsid(2) and execs the command in place: $! is the new process, and its session's id.
printf '%s handoff: starting release %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "$release" >>"$log"
logsize=$(wc -c <"$log")
PORT=$port setsid "$@" </dev/null >>"$log" 2>&1 &
new=$!
newstart=$(starttime "$new") || newstart=
record "$new $newstart" "$old"

# 2. Wait until it listens on the port.
deadline=$(($(date +%s) + ready_timeout))
until listening "$new"; do
	why=
	if [ -z "$newstart" ] || [ "$(starttime "$new")" != "$newstart" ]; then
		why="exited before it listened on port $port"
	elif [ "$(date +%s)" -ge "$deadline" ]; then
		why="did not listen on port $port within ${ready_timeout}s"
	fi
	if [ -n "$why" ]; then
		kill -KILL "-$new" 2>/dev/null
		record "$old"
		still="no process served before it"
		[ -z "$old" ] || still="the process that served before still does"
		printf 'handoff: release %s (%s, pid %s) %s; %s. Its output (%s):\n' "$release" "$*" "$new" "$why" "$still" "$log" >&2
		tail -c +$((logsize + 1)) "$log" | tail -n 20 >&2
		exit 1
	fi
	nap 0.05
done
say "release $release (pid $new) listens on port $port"

# 3. Stop every older process; once they are gone, the list holds the new one only.
printf '%s' "$old" | while read -r pid start; do
	stop "$pid" "$start"
done
record "$new $newstart"

for f in "$run/$name".*.log; do
	id=${f#"$run/$name."}
	id=${id%.log}
	[ -f "$f" ] && [ ! -d "$root/releases/$id" ] && rm -f "$f"
done
exit 0
