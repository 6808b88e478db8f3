package transfer

import (
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// HashCache remembers the hash of each file of a build by its stat data (size, mtime, ctime,
// inode), as git's index does, so that an incremental deploy reads only the files that changed.
// ctime cannot be set by tools that preserve timestamps, so a rewritten file always misses.
// The cache is an optimisation only: any error reading or writing it is ignored.
type HashCache struct {
	file    string
	entries map[string]cacheEntry
	next    map[string]cacheEntry
}

type cacheEntry struct {
	Size, MTime, CTime int64
	Ino                uint64
	Hash               string
}

// OpenHashCache returns the cache for the build directory src, kept under the user's cache
// directory. It returns nil when there is no place to keep one.
func OpenHashCache(src string) *HashCache {
	base, err := os.UserCacheDir()
	if err != nil {
		return nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256([]byte(abs))
	c := &HashCache{file: filepath.Join(base, "ferry", "hashes-"+hex.EncodeToString(sum[:8])+".gob"), entries: map[string]cacheEntry{}, next: map[string]cacheEntry{}}
	if f, err := os.Open(c.file); err == nil {
		_ = gob.NewDecoder(f).Decode(&c.entries)
		f.Close()
	}
	return c
}

// statKey is what a file's stat data says of its content: a file whose key is unchanged has
// its cached hash.
func statKey(st *unix.Stat_t) cacheEntry {
	return cacheEntry{Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Ino: uint64(st.Ino)}
}

// lookup returns the cached hash of rel if its stat data is unchanged.
func (c *HashCache) lookup(rel string, key cacheEntry) (string, bool) {
	if c == nil {
		return "", false
	}
	e, ok := c.entries[rel]
	if !ok || e.Size != key.Size || e.MTime != key.MTime || e.CTime != key.CTime || e.Ino != key.Ino {
		return "", false
	}
	return e.Hash, true
}

// racyWindow: a file changed this shortly before a scan is not remembered, because a second
// change within the same tick of the filesystem's clock would leave its stat data unchanged.
var racyWindow = 2 * time.Second

// remember records the hash of rel for the next scan.
func (c *HashCache) remember(rel string, key cacheEntry, hash string, scanStart time.Time) {
	if c == nil {
		return
	}
	limit := scanStart.Add(-racyWindow).UnixNano()
	if key.CTime >= limit || key.MTime >= limit {
		return
	}
	key.Hash = hash
	c.next[rel] = key
}

// Save replaces the cache file with what this scan saw.
func (c *HashCache) Save() {
	if c == nil || maps.Equal(c.next, c.entries) {
		return // nothing changed: not written again
	}
	if err := os.MkdirAll(filepath.Dir(c.file), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.file), ".hashes-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	if err := gob.NewEncoder(tmp).Encode(c.next); err != nil {
		tmp.Close()
		return
	}
	if tmp.Close() == nil {
		_ = os.Rename(tmp.Name(), c.file)
	}
}
