package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Scan walks the build in dir and returns its manifest. Paths the exclude patterns leave out
// (gitignore rules, see Excluded) are not in it, and an excluded directory is not read at all.
// A symlink that is absolute, or that leads out of dir when followed through the build (through
// other links too), or that loops, is an error, and so is any file that is not a regular file,
// directory or symlink: the release would depend on the machine it was built on.
// cache, if not nil, spares reading files whose stat data did not change since the last scan.
func Scan(dir string, exclude []string, cache *HashCache) (*Manifest, error) {
	start := time.Now()
	excl := parseExclude(exclude)
	var infos []fs.FileInfo // of regular files, in entry order, for the cache
	info, err := os.Stat(dir)
	if err != nil {
		return nil, &SourceError{Err: fmt.Errorf("source %s: %w", dir, err)}
	}
	if !info.IsDir() {
		return nil, &SourceError{Err: fmt.Errorf("source %s is not a directory", dir)}
	}
	m := &Manifest{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		// The walk never enters an excluded directory, so rel's own match is the whole answer.
		if excl.matches(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// A release gets the build's permissions as the deploying user's umask lets them, the
		// same over every transport; setuid, setgid and sticky bits are never deployed.
		e := Entry{Path: rel, Mode: info.Mode().Perm() &^ umask, MTime: info.ModTime().Unix()}
		switch {
		case info.Mode().IsDir():
			e.Type = TypeDir
		case info.Mode().IsRegular():
			e.Type, e.Size = TypeFile, info.Size()
			e.Hash, _ = cache.lookup(rel, info)
			infos = append(infos, info)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := symlinkInside(dir, rel, target); err != nil {
				return &SourceError{Path: rel, Err: fmt.Errorf("source %s: %w", dir, err)}
			}
			e.Type, e.Target = TypeSymlink, target
		default:
			return &SourceError{Path: rel, Err: fmt.Errorf("source %s: %q is a %s; only files, directories and symlinks can be deployed", dir, rel, info.Mode().Type())}
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := hashFiles(dir, m); err != nil {
		return nil, err
	}
	i := 0
	for _, e := range m.Entries {
		if e.Type == TypeFile {
			cache.remember(e.Path, infos[i], e.Hash, start)
			i++
		}
	}
	return m, nil
}

// maxLinkHops is how many symlinks resolving one link may follow, as in the Linux kernel.
const maxLinkHops = 40

// symlinkInside refuses a link that is absolute, that climbs out of the build by its text, or that
// leaves the build in dir at any step of its resolution, or loops. The link rel (slash-separated,
// relative to dir) is resolved as the kernel would, one component at a time, following the links
// it meets inside the build: "u2 -> u1/.." climbs out if u1 is itself a link to "..". A component
// that does not exist, or is not a directory, is taken by name, so a link that dangles inside the
// build stays allowed.
func symlinkInside(dir, rel, target string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("symlink %q points to the absolute path %q, outside the build; make it relative", rel, target)
	}
	if lexical := path.Join(path.Dir(rel), target); lexical == ".." || strings.HasPrefix(lexical, "../") {
		return fmt.Errorf("symlink %q points to %q, outside the build", rel, target)
	}
	outside := func(resolved string) error {
		if !path.IsAbs(resolved) {
			if abs, err := filepath.Abs(dir); err == nil {
				resolved = filepath.ToSlash(filepath.Join(abs, filepath.FromSlash(resolved)))
			}
		}
		return fmt.Errorf("symlink %q points to %q, which resolves through other links to %q, outside the build", rel, target, resolved)
	}
	var at []string // the directories resolved so far, from the top of the build
	if d := path.Dir(rel); d != "." {
		at = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	for hops := 1; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return outside(path.Join("..", path.Join(todo...)))
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, name)
		p := filepath.Join(dir, filepath.FromSlash(path.Join(at...)))
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if hops++; hops > maxLinkHops {
			return fmt.Errorf("symlink %q points to %q, which loops (more than %d links to follow)", rel, target, maxLinkHops)
		}
		next, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if path.IsAbs(next) {
			return outside(path.Join(next, path.Join(todo...)))
		}
		at = at[:len(at)-1]
		todo = append(strings.Split(next, "/"), todo...)
	}
	return nil
}

// hashFiles fills in the hash of every file, reading files in parallel.
func hashFiles(dir string, m *Manifest) error {
	var g errgroup.Group
	g.SetLimit(max(runtime.GOMAXPROCS(0), 2) * 2)
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != TypeFile || e.Hash != "" {
			continue
		}
		g.Go(func() error {
			h, err := hashFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
			if err != nil {
				return err
			}
			e.Hash = h
			return nil
		})
	}
	return g.Wait()
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrSourceChanged is returned when a file changed between the scan and the upload.
var ErrSourceChanged = errors.New("source changed during the deploy")

// SourceError is a build that cannot be shipped as it is. Path is "" when the directory itself is
// missing or not a directory, else the entry that is refused (a fifo, a device, a socket, or a
// symlink that leads out of the build).
type SourceError struct {
	Path string
	Err  error
}

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// umask is this process's file mode creation mask, read once at start, before any goroutine
// may create files (reading it means setting it).
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()
