package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferry-deploy/ferry/internal/release"
)

// manifestCache keeps the manifests of live releases on the deploying machine, so that an
// unchanged manifest never crosses the wire again: a file per release, named by its id and its
// SHA-256 as the host's log records it, in a directory per host and root.
type manifestCache struct {
	dir string // "" when there is no cache directory
}

func openCache(dir string) *manifestCache {
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "ferry", "manifests")
		}
	}
	return &manifestCache{dir: dir}
}

// hostDir is the directory of one host's root: hosts are told apart by their address as the
// config names it.
func (c *manifestCache) hostDir(t *Target) string {
	sum := sha256.Sum256([]byte(t.spec.SSH + "\x00" + t.Name + "\x00" + t.Root.Dir))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:12]))
}

// ids lists the release ids the cache holds for t. Hosts on this machine are not cached:
// reading the manifest there costs nothing.
func (c *manifestCache) ids(t *Target) []string {
	if c.dir == "" || t.spec.Local {
		return nil
	}
	entries, _ := os.ReadDir(c.hostDir(t))
	var out []string
	for _, e := range entries {
		id, _, ok := strings.Cut(e.Name(), ".")
		if ok && !slices.Contains(out, id) {
			if _, err := release.ParseID(id); err == nil {
				out = append(out, id)
			}
		}
	}
	return out
}

// get returns the manifest of release id whose SHA-256 is sum, or nil.
func (c *manifestCache) get(t *Target, id, sum string) []byte {
	if c.dir == "" || sum == "" || t.spec.Local {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(c.hostDir(t), id+"."+sum))
	if err != nil {
		return nil
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
		return nil
	}
	return data
}

// cacheKeep is how many manifests are kept a host: the live release's is the one asked for, and
// after a rollback it is one deployed before.
const cacheKeep = 6

// put stores the manifest of release id and forgets the host's oldest manifests.
func (c *manifestCache) put(t *Target, id string, data []byte) {
	if c.dir == "" || t.spec.Local {
		return
	}
	dir := c.hostDir(t)
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	sum := sha256.Sum256(data)
	name := id + "." + hex.EncodeToString(sum[:])
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		tmp := filepath.Join(dir, name+".tmp")
		if os.WriteFile(tmp, data, 0o600) != nil || os.Rename(tmp, filepath.Join(dir, name)) != nil {
			os.Remove(tmp)
			return
		}
	}
	now := time.Now()
	os.Chtimes(filepath.Join(dir, name), now, now) // a manifest used again is kept longer
	entries, _ := os.ReadDir(dir)
	type file struct {
		name string
		used time.Time
	}
	var files []file
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			files = append(files, file{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return b.used.Compare(a.used) })
	for _, f := range files[min(cacheKeep, len(files)):] {
		os.Remove(filepath.Join(dir, f.name))
	}
}
