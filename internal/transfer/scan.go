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
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Scan walks the build in dir and returns its manifest. Paths the exclude patterns leave out
// (gitignore rules, see Matcher) are not in it, and an excluded directory is not read at all.
// A symlink that is absolute, or that leads out of dir when followed through the build (through
// other links too), or that loops, is an error, and so is any file that is not a regular file,
// directory or symlink: the release would depend on the machine it was built on.
// cache, if not nil, spares reading files whose stat data did not change since the last scan.
func Scan(dir string, exclude []string, cache *HashCache) (*Manifest, error) {
	start := time.Now()
	info, err := os.Stat(dir)
	if err != nil {
		return nil, &SourceError{Err: fmt.Errorf("source %s: %w", dir, err)}
	}
	if !info.IsDir() {
		return nil, &SourceError{Err: fmt.Errorf("source %s is not a directory", dir)}
	}
	top, err := os.Open(dir)
	if err != nil {
		return nil, &SourceError{Err: fmt.Errorf("source %s: %w", dir, err)}
	}
	w := &scanWalk{dir: dir, excl: parseExclude(exclude), cache: cache, m: &Manifest{}}
	err = w.walk(top, "")
	top.Close()
	if err != nil {
		return nil, err
	}
	m := w.m
	if err := hashFiles(dir, m); err != nil {
		return nil, err
	}
	i := 0
	for _, e := range m.Entries {
		if e.Type == TypeFile {
			cache.remember(e.Path, w.keys[i], e.Hash, start)
			i++
		}
	}
	return m, nil
}

// scanWalk is one Scan's walk of the build: depth first, the entries of each directory by name
// (as filepath.WalkDir), each stat'ed relative to its directory's descriptor, so that the
// kernel looks up one name, not every component of a long path.
type scanWalk struct {
	dir   string
	excl  excludeList
	cache *HashCache
	m     *Manifest
	keys  []cacheEntry // of regular files, in entry order, for the cache
}

// walk adds the entries of the directory open as f, which is rel in the build ("" for the
// top), and closes nothing.
func (w *scanWalk) walk(f *os.File, rel string) error {
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	slices.Sort(names)
	fd := int(f.Fd())
	for _, name := range names {
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "lstat", Path: filepath.Join(w.dir, r), Err: err}
		}
		mode := uint32(st.Mode)
		isDir := mode&unix.S_IFMT == unix.S_IFDIR
		// The walk never enters an excluded directory, so r's own match is the whole answer.
		if w.excl.matches(r, isDir) {
			continue
		}
		// A release gets the build's permissions as the deploying user's umask lets them, the
		// same over every transport; setuid, setgid and sticky bits are never deployed.
		e := Entry{Path: r, Mode: fs.FileMode(mode&0o777) &^ umask, MTime: int64(st.Mtim.Sec)}
		switch mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Type = TypeDir
			w.m.Entries = append(w.m.Entries, e)
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return &fs.PathError{Op: "open", Path: filepath.Join(w.dir, r), Err: err}
			}
			child := os.NewFile(uintptr(cfd), filepath.Join(w.dir, r))
			err = w.walk(child, r)
			child.Close()
			if err != nil {
				return err
			}
			continue
		case unix.S_IFREG:
			key := statKey(&st)
			e.Type, e.Size = TypeFile, st.Size
			e.Hash, _ = w.cache.lookup(r, key)
			w.keys = append(w.keys, key)
		case unix.S_IFLNK:
			target, err := readlinkat(fd, name)
			if err != nil {
				return &fs.PathError{Op: "readlink", Path: filepath.Join(w.dir, r), Err: err}
			}
			if err := symlinkInside(w.dir, r, target); err != nil {
				return &SourceError{Path: r, Err: fmt.Errorf("source %s: %w", w.dir, err)}
			}
			e.Type, e.Target = TypeSymlink, target
		default:
			return &SourceError{Path: r, Err: fmt.Errorf("source %s: %q is a %s; only files, directories and symlinks can be deployed", w.dir, r, fileType(mode))}
		}
		w.m.Entries = append(w.m.Entries, e)
	}
	return nil
}

// readlinkat is the target of the link name in the directory open as fd.
func readlinkat(fd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// fileType is the type bits of a stat mode as fs.FileMode has them (a fifo prints as p---------).
func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
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
