package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
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

// Lock takes the root's lock for me. The lock file is created atomically with its content, so
// two runs can never both believe they hold it. A lock left by a dead process on this machine
// is taken over after warn is told. Otherwise Lock waits up to wait for the holder to finish
// and then fails with a *LockedError. The returned function releases the lock.
func (r *Root) Lock(ctx context.Context, me Holder, wait time.Duration, warn func(string)) (unlock func() error, err error) {
	data, err := json.Marshal(me)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := r.Host.CreateExclusive(r.lockPath(), data)
		if err == nil {
			return func() error { return r.unlockIf(data) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("take lock %s: %w", r.lockPath(), err)
		}
		held, raw, err := r.readLock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if held != nil && provablyGone(*held) {
			if r.takeOver(raw) {
				warn(fmt.Sprintf("took over a stale lock of %s: that process is gone", held))
			}
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // released between our two calls
		}
		if time.Now().After(deadline) {
			return nil, &LockedError{Root: r.Dir, Holder: held}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readLock returns the holder of the lock, or a nil holder when the file does not parse.
func (r *Root) readLock() (*Holder, []byte, error) {
	raw, err := r.Host.ReadFile(r.lockPath())
	if err != nil {
		return nil, nil, err
	}
	var h Holder
	if json.Unmarshal(raw, &h) != nil {
		return nil, raw, nil
	}
	return &h, raw, nil
}

// Holder returns who holds the root's lock, or nil when nobody does.
func (r *Root) Holder() (*Holder, error) {
	h, raw, err := r.readLock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h == nil {
		return &Holder{Command: fmt.Sprintf("unreadable lock file (%d bytes)", len(raw))}, nil
	}
	return h, nil
}

// Unlock removes the lock whoever holds it, for 'ferry unlock'. It returns the former holder.
func (r *Root) Unlock() (*Holder, error) {
	h, err := r.Holder()
	if err != nil || h == nil {
		return h, err
	}
	if err := r.Host.Remove(r.lockPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return h, err
	}
	return h, nil
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
func (r *Root) takeOver(stale []byte) bool {
	aside := r.lockPath() + ".stale-" + randomSuffix()
	if err := r.Host.Rename(r.lockPath(), aside); err != nil {
		return false
	}
	got, err := r.Host.ReadFile(aside)
	if err == nil && !bytes.Equal(got, stale) {
		// Not the lock we judged stale: restore it unless yet another run took the lock.
		_ = r.Host.Rename(aside, r.lockPath())
		return false
	}
	_ = r.Host.Remove(aside)
	return true
}

// unlockIf removes the lock only if it is still the one we wrote.
func (r *Root) unlockIf(mine []byte) error {
	got, err := r.Host.ReadFile(r.lockPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, mine) {
		return errors.New("the lock was taken over by another run; not removing it")
	}
	return r.Host.Remove(r.lockPath())
}
