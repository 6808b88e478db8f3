package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrLocked is wrapped by every error that reports a root held by another run.
var ErrLocked = errors.New("locked")

// Holder is who holds a root's lock; it is the content of <root>/.ferry/lock.
//
// Machine, Boot, PIDNS and Start say which process PID is, so that another run can prove it
// gone: the same host name is not the same machine (CI runners, containers, laptops all called
// "ubuntu"), and a pid means nothing outside its pid namespace or once it is reused.
type Holder struct {
	User    string    `json:"user"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Time    time.Time `json:"time"`
	Command string    `json:"command"`
	Machine string    `json:"machine,omitempty"` // /etc/machine-id
	Boot    string    `json:"boot,omitempty"`    // the kernel's boot id
	PIDNS   string    `json:"pidns,omitempty"`   // the pid namespace, as /proc/self/ns/pid reads
	Start   uint64    `json:"start,omitempty"`   // the process's start, in clock ticks since boot
}

// String describes the holder in one line. The lock file is written by whoever can write the
// root: a field with a control character (a newline that would forge a line of output, an
// escape sequence for the terminal) is shown escaped.
func (h Holder) String() string {
	return fmt.Sprintf("%s@%s (pid %d, '%s', since %s)", printable(h.User), printable(h.Host), h.PID, printable(h.Command), h.Time.Local().Format(time.DateTime))
}

// printable is s, or s escaped as a Go string without its quotes when it holds a character that
// is not graphic.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) < 0 && utf8.ValidString(s) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// LockedError names the holder of a lock that could not be taken.
type LockedError struct {
	Root   string
	Holder *Holder // nil when the lock file could not be read
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s is locked by another run", e.Root)
	}
	return fmt.Sprintf("%s is locked by %s", e.Root, e.Holder)
}

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Unwrap() error { return ErrLocked }

// CurrentHolder describes this process as a lock holder.
func CurrentHolder(command string) Holder {
	hostname, _ := os.Hostname()
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && name == "" {
		name = u.Username
	}
	if name == "" {
		name = fmt.Sprint(os.Getuid())
	}
	h := Holder{User: name, Host: hostname, PID: os.Getpid(), Time: time.Now().UTC(), Command: command}
	h.Machine, h.Boot, h.PIDNS = identity()
	h.Start = processStart(h.PID)
	return h
}

// identity reads what tells this machine, this boot of it and this pid namespace from others;
// each is "" where the system does not say (not Linux).
func identity() (machine, boot, pidns string) {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	machine = read("/etc/machine-id")
	if machine == "" {
		machine = read("/var/lib/dbus/machine-id")
	}
	boot = read("/proc/sys/kernel/random/boot_id")
	pidns, _ = os.Readlink("/proc/self/ns/pid")
	return machine, boot, pidns
}

// processStart is when process pid started, in clock ticks since boot (field 22 of
// /proc/<pid>/stat), or 0 when it does not exist or the system does not say.
func processStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // from field 3
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// Lease is a lock this run holds.
type Lease struct {
	root *Root
	data []byte
	// live is what the probe saw of the live release: its scratch copy (Live.Copy) is removed
	// with the lock if still there, and ended first if the host makes it while the run plans.
	live  *Live
	links string // the prefix of the probe's temporary links, removed with the lock
}

// Lock probes the root taking its lock for me (see Probe). The lock file is hard-linked into
// place complete, so two runs can never both believe they hold it. A lock left by a dead process
// on this machine is taken over after warn is told. Otherwise Lock waits up to wait for the
// holder to finish, probing again every 200 ms, and then fails with a *LockedError.
func (r *Root) Lock(ctx context.Context, me Holder, wait time.Duration, o ProbeOptions, warn func(string)) (*Probe, *Lease, error) {
	o.Lock = &me
	data, err := json.Marshal(me)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		p, err := r.Probe(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		if p.NotLink != "" {
			return nil, nil, &HintError{
				Err:  fmt.Errorf("%s is a %s, not a symlink", r.currentPath(), p.NotLink),
				Hint: fmt.Sprintf("move it aside (mv %s %s.old) so ferry can manage current", r.currentPath(), r.currentPath()),
			}
		}
		if p.Missing || p.Locked {
			if p.Locked {
				l := &Lease{root: r, data: data, live: p.Live}
				l.links = p.linkPrefix
				return p, l, nil
			}
			return p, nil, nil
		}
		if p.Holder != nil && provablyGone(*p.Holder) {
			if ok, err := r.takeOver(ctx, p.HolderRaw); err != nil {
				return nil, nil, err
			} else if ok {
				warn(fmt.Sprintf("took over a stale lock of %s: that process is gone", p.Holder))
			}
			continue
		}
		if time.Now().After(deadline) {
			return nil, nil, &LockedError{Root: r.Dir, Holder: p.Holder}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Is reports whether h and o are the same run's lock.
func (h Holder) Is(o Holder) bool {
	return h.PID == o.PID && h.Host == o.Host && h.Machine == o.Machine && h.Start == o.Start && h.Time.Equal(o.Time)
}

// Stale reports whether h is provably gone.
func (h Holder) Stale() bool { return provablyGone(h) }

// Alive reports whether h is provably alive: its process runs on this machine.
func (h Holder) Alive() bool {
	return h.here() && h.Start != 0 && processStart(h.PID) == h.Start
}

// here reports whether h ran on this machine, in this boot and in this pid namespace, so that
// its pid can be looked up here. A holder that does not say (an older ferry, not Linux) is not.
func (h Holder) here() bool {
	machine, boot, pidns := identity()
	hostname, _ := os.Hostname()
	return h.PID > 0 && h.Host == hostname && h.Machine != "" && h.Machine == machine &&
		h.Boot != "" && h.Boot == boot && h.PIDNS != "" && h.PIDNS == pidns
}

// hidden reports whether h ran on this machine, in this boot, but in a pid namespace this
// process cannot see into: it may be alive, and nothing here can tell.
func (h Holder) hidden() bool {
	machine, boot, pidns := identity()
	return h.Machine != "" && h.Machine == machine && h.Boot != "" && h.Boot == boot && h.PIDNS != pidns
}

// provablyGone is true only when the holder ran here (see here) and its process no longer
// exists, or its pid now belongs to a process that started at another time. A holder that may
// be alive elsewhere is never presumed dead: only 'ferry unlock' removes its lock.
func provablyGone(h Holder) bool {
	if !h.here() || h.Start == 0 {
		return false
	}
	start := processStart(h.PID)
	if start == 0 {
		return errors.Is(syscall.Kill(h.PID, 0), syscall.ESRCH)
	}
	return start != h.Start
}

// takeOver moves the stale lock whose content is stale aside. If, between reading and moving,
// another run replaced it with a fresh lock, that lock is put back and false returned.
func (r *Root) takeOver(ctx context.Context, stale []byte) (bool, error) {
	s := r.newScript()
	s.line(`A="$R/.ferry/lock.stale-` + randomSuffix() + `"`)
	s.line(`mv "$R/.ferry/lock" "$A" 2>/dev/null || exit 0`)
	// $(…) drops trailing newlines, so the comparison does too.
	s.line(`if [ "$(cat "$A")" = ` + q(strings.TrimRight(string(stale), "\n")) + ` ]; then rm -f "$A"; note taken; exit 0; fi`)
	// Not the lock we judged stale: put it back unless yet another run took the lock.
	s.line(`ln "$A" "$R/.ferry/lock" 2>/dev/null; rm -f "$A"`)
	f, err := s.run(ctx)
	if err != nil {
		return false, fmt.Errorf("take over the lock of %s: %w", r.Dir, err)
	}
	return len(f) > 0 && f[0] == "taken", nil
}

// unlockScript removes the lock only if it is still the one l wrote, and the scratch copy the
// probe made if it was not used.
func (l *Lease) unlockScript(s *script) {
	if l.live != nil {
		l.live.StopCopy()
		if l.live.Copy != "" {
			s.trash = append(s.trash, l.live.Copy)
		}
	}
	if l.links != "" {
		s.line(`rm -f "$R"/current.` + l.links + `??????`)
	}
	s.line(`if [ "$(cat "$R/.ferry/lock" 2>/dev/null)" = ` + q(string(l.data)) + ` ]; then`)
	// Only the run that holds the lock may stop processes: another run's new process is
	// neither current nor linked until its swap.
	l.root.stopStaleScript(s)
	s.line(removeLockIf(string(l.data)) + `; elif [ -e "$R/.ferry/lock" ]; then note warn "the lock was taken over by another run; not removing it"; fi`)
}

// removeLockIf is sh that removes the lock only if it still holds data, atomically: a check and
// then rm would remove the lock of a run that took it over in between (a killed run's unlock,
// which goes on after it, stopping processes between the two). The lock is moved aside to a
// name of its own, compared there, and linked back if it is another run's; a run that looks for
// its lock in that instant waits for it (see heldScript).
func removeLockIf(data string) string {
	a := `"$R/.ferry/lock.gone-` + randomSuffix() + `"`
	return `if mv "$R/.ferry/lock" ` + a + ` 2>/dev/null; then if [ "$(cat ` + a + ` 2>/dev/null)" != ` + q(strings.TrimRight(data, "\n")) + ` ]; then ln ` + a + ` "$R/.ferry/lock" 2>/dev/null; fi; rm -f ` + a + `; fi`
}

// heldScript adds to s a check that the lock is still this run's: a run whose lock another
// run took over (its process here was gone, while its last script still ran on the host; or
// the rare takeover that could not put a fresh lock back) stops before it changes anything more.
//
// A lock that is missing is waited for, up to 2 s: a takeover still running from a run killed
// here (its script goes on after it) moves the lock aside to compare it, and puts back one
// that is not the stale lock it meant.
func (l *Lease) heldScript(s *script) {
	s.line(`i=0; while [ ! -e "$R/.ferry/lock" ] && [ $i -lt 20 ]; do sleep 0.1 2>/dev/null || { sleep 1; i=$((i+9)); }; i=$((i+1)); done`)
	s.line(`[ "$(cat "$R/.ferry/lock" 2>/dev/null)" = ` + q(string(l.data)) + ` ] || die "this run's lock was taken over by another run; it stops here"`)
}

// Release gives the lock up.
func (l *Lease) Release(ctx context.Context) error {
	d, err := l.ReleaseDone(ctx)
	if err == nil && len(d.Warnings) > 0 {
		err = errors.New(d.Warnings[0])
	}
	return err
}

// ReleaseDone gives the lock up and says what that did: the processes it asked to stop (see
// Done.Stopped), and its warnings.
func (l *Lease) ReleaseDone(ctx context.Context) (*Done, error) {
	s := l.root.newScript()
	l.unlockScript(s)
	f, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	return done(nil, f), nil
}

// Unlock removes the lock whoever holds it, for 'ferry unlock'. It returns the former holder. A
// lock whose run is provably alive on this machine is kept unless force is set.
func (r *Root) Unlock(ctx context.Context, force bool) (*Holder, error) {
	p, err := r.Probe(ctx, ProbeOptions{})
	if err != nil || p.Holder == nil {
		return nil, err
	}
	if p.Holder.Alive() && !force {
		return p.Holder, &HintError{
			Err:  fmt.Errorf("%w: the run that holds it is still alive on this machine", &LockedError{Root: r.Dir, Holder: p.Holder}),
			Hint: fmt.Sprintf("let it finish or stop it (kill %d); 'ferry unlock --force' removes the lock anyway", p.Holder.PID),
		}
	}
	if p.Holder.hidden() && !force {
		return p.Holder, &HintError{
			Err:  fmt.Errorf("%w: the run that holds it ran on this machine in another pid namespace (a container), where ferry cannot see whether it is alive", &LockedError{Root: r.Dir, Holder: p.Holder}),
			Hint: "make sure that run has ended (look in that container), then 'ferry unlock --force'",
		}
	}
	s := r.newScript()
	s.line(`if [ "$(cat "$R/.ferry/lock" 2>/dev/null)" = ` + q(strings.TrimRight(string(p.HolderRaw), "\n")) + ` ]; then ` + removeLockIf(string(p.HolderRaw)) + `; fi`)
	if _, err := s.run(ctx); err != nil {
		return p.Holder, err
	}
	return p.Holder, nil
}
