package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is wrapped by every error that reports a root held by another run.
var ErrLocked = errors.New("locked")

// Holder is who holds a root's lock; it is the content of <root>/.ferry/lock.
type Holder struct {
	User    string    `json:"user"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Time    time.Time `json:"time"`
	Command string    `json:"command"`
}

func (h Holder) String() string {
	return fmt.Sprintf("%s@%s (pid %d, '%s', since %s)", h.User, h.Host, h.PID, h.Command, h.Time.Local().Format(time.DateTime))
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
	return Holder{User: name, Host: hostname, PID: os.Getpid(), Time: time.Now().UTC(), Command: command}
}

// Lease is a lock this run holds.
type Lease struct {
	root  *Root
	data  []byte
	copy  string // the probe's scratch copy, removed with the lock if still there
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
				l := &Lease{root: r, data: data}
				if p.Live != nil {
					l.copy = p.Live.Copy
				}
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

// Stale reports whether h is provably gone.
func (h Holder) Stale() bool { return provablyGone(h) }

// provablyGone is true only when the holder ran on this machine and its process no longer
// exists. A holder on another machine may be alive: only 'ferry unlock' removes its lock.
func provablyGone(h Holder) bool {
	hostname, _ := os.Hostname()
	if h.Host != hostname || h.PID <= 0 {
		return false
	}
	err := syscall.Kill(h.PID, 0)
	return errors.Is(err, syscall.ESRCH)
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
	if l.copy != "" {
		s.trash = append(s.trash, l.copy)
	}
	if l.links != "" {
		s.line(`rm -f "$R"/current.` + l.links + `??????`)
	}
	s.line(`if [ "$(cat "$R/.ferry/lock" 2>/dev/null)" = ` + q(string(l.data)) + ` ]; then rm -f "$R/.ferry/lock"; ` +
		`elif [ -e "$R/.ferry/lock" ]; then note warn "the lock was taken over by another run; not removing it"; fi`)
}

// Release gives the lock up.
func (l *Lease) Release(ctx context.Context) error {
	s := l.root.newScript()
	l.unlockScript(s)
	f, err := s.run(ctx)
	if err != nil {
		return err
	}
	if d := done(nil, f); len(d.Warnings) > 0 {
		return errors.New(d.Warnings[0])
	}
	return nil
}

// Unlock removes the lock whoever holds it, for 'ferry unlock'. It returns the former holder.
func (r *Root) Unlock(ctx context.Context) (*Holder, error) {
	p, err := r.Probe(ctx, ProbeOptions{})
	if err != nil || p.Holder == nil {
		return nil, err
	}
	s := r.newScript()
	s.line(`if [ "$(cat "$R/.ferry/lock" 2>/dev/null)" = ` + q(strings.TrimRight(string(p.HolderRaw), "\n")) + ` ]; then rm -f "$R/.ferry/lock"; fi`)
	if _, err := s.run(ctx); err != nil {
		return p.Holder, err
	}
	return p.Holder, nil
}
