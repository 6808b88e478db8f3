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
)

// Scan walks the build in dir and returns its manifest. Paths matching an exclude pattern are
// left out. A symlink whose target lies outside dir, and any file that is not a regular file,
// directory or symlink, is an error: the release would depend on the machine it was built on.
// cache, if not nil, spares reading files whose stat data did not change since the last scan.
func Scan(dir string, exclude []string, cache *HashCache) (*Manifest, error) {
	start := time.Now()
	var infos []fs.FileInfo // of regular files, in entry order, for the cache
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("source %s is not a directory", dir)
	}
	m := &Manifest{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel := filepath.ToSlash(p[len(dir)+1:])
		if Excluded(rel, d.IsDir(), exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: rel, Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), MTime: info.ModTime().Unix()}
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
			if err := symlinkInside(rel, target); err != nil {
				return fmt.Errorf("source %s: %w", dir, err)
			}
			e.Type, e.Target = TypeSymlink, target
		default:
			return fmt.Errorf("source %s: %q is a %s; only files, directories and symlinks can be deployed", dir, rel, info.Mode().Type())
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

// symlinkInside refuses a link that is absolute or climbs out of the build.
func symlinkInside(rel, target string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("symlink %q points to the absolute path %q, outside the build; make it relative", rel, target)
	}
	resolved := path.Join(path.Dir(rel), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink %q points to %q, outside the build", rel, target)
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

// Excluded reports whether rel matches one of the gitignore-style patterns: a pattern without a
// slash matches a name at any depth ("*.log", ".git"), a pattern with a slash matches from the
// top of the build ("/build", "docs/*.md"), and a trailing slash matches directories only.
func Excluded(rel string, isDir bool, patterns []string) bool {
	for _, pat := range patterns {
		dirOnly := strings.HasSuffix(pat, "/")
		pat = strings.TrimSuffix(pat, "/")
		if dirOnly && !isDir {
			continue
		}
		if strings.Contains(pat, "/") {
			if ok, _ := path.Match(strings.TrimPrefix(pat, "/"), rel); ok {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pat, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

// ErrSourceChanged is returned when a file changed between the scan and the upload.
var ErrSourceChanged = errors.New("source changed during the deploy")
