package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ferry-deploy/ferry/internal/host/local"
)

func TestManifestRoundTripsOddNames(t *testing.T) {
	m := &Manifest{Entries: []Entry{
		{Path: "a dir", Type: TypeDir, Mode: 0o755},
		{Path: "a dir/new\nline", Type: TypeFile, Size: 3, Mode: 0o644, Hash: "ab", MTime: 1},
		{Path: "bad-\xff.txt", Type: TypeFile, Size: 1, Mode: 0o600, Hash: "cd"},
		{Path: "link", Type: TypeSymlink, Target: "bad-\xff.txt", Mode: 0o777},
	}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

func TestExcluded(t *testing.T) {
	patterns := []string{".git", "*.log", "/build", "docs/*.md", "tmp/"}
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{".git", true, true},
		{"sub/.git", true, true},
		{"app.log", false, true},
		{"logs/app.log", false, true},
		{"build", true, true},
		{"src/build", true, false},
		{"docs/a.md", false, true},
		{"docs/sub/a.md", false, false},
		{"tmp", true, true},
		{"tmp", false, false},
		{"index.html", false, false},
	} {
		if got := NewMatcher(patterns).Match(tc.path, tc.isDir); got != tc.want {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
}

func TestScanHashesAndRefusesEscapingLinks(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/f.txt"), []byte("hello"), 0o640)
	os.WriteFile(filepath.Join(dir, "debug.log"), []byte("x"), 0o644)
	os.Symlink("b/f.txt", filepath.Join(dir, "a/link"))
	m, err := Scan(dir, []string{"*.log"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Type+" "+e.Path)
	}
	if diff := cmp.Diff([]string{"dir a", "dir a/b", "file a/b/f.txt", "symlink a/link"}, paths); diff != "" {
		t.Fatalf("entries (-want +got):\n%s", diff)
	}
	if h := m.Entries[2].Hash; h != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("hash of hello = %s", h)
	}
	if m.Entries[2].Mode != 0o640 {
		t.Fatalf("mode = %v", m.Entries[2].Mode)
	}
	os.Symlink("../../..", filepath.Join(dir, "a/b/up"))
	if _, err := Scan(dir, nil, nil); err == nil || !strings.Contains(err.Error(), "outside the build") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnpackRefusesEntriesOutsideItsDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  tar.Header
	}{
		{"dotdot", tar.Header{Name: "../escape", Typeflag: tar.TypeReg}},
		{"absolute", tar.Header{Name: "/tmp/escape", Typeflag: tar.TypeReg}},
		{"hard link out", tar.Header{Name: "x", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tc.hdr)
			tw.Close()
			dir := filepath.Join(t.TempDir(), "releases")
			os.Mkdir(dir, 0o755)
			_, err := local.New().Unpack(context.Background(), dir, &buf, "", "")
			if err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestPlanWriteDetectsASourceChangedSinceTheScan(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("one"), 0o644)
	m, err := Scan(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("two"), 0o644)
	err = NewPlan(m, nil, "", ReuseLink, nil).Write(io.Discard, dir, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "source changed") {
		t.Fatalf("err = %v", err)
	}
}

func TestHashCacheSeesAContentChangeThatKeepsSizeAndMtime(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = 0
	dir := t.TempDir()
	p := filepath.Join(dir, "app.js")
	old := time.Now().Add(-time.Hour)
	os.WriteFile(p, []byte("version 1"), 0o644)
	os.Chtimes(p, old, old)
	c := OpenHashCache(dir)
	first, err := Scan(dir, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	c.Save()

	// The cache is used: an unchanged file is not read again.
	c = OpenHashCache(dir)
	e := c.entries["app.js"]
	e.Hash = "cached"
	c.entries["app.js"] = e
	if m, _ := Scan(dir, nil, c); m.Entries[0].Hash != "cached" {
		t.Fatalf("unchanged file was hashed again: %s", m.Entries[0].Hash)
	}

	// A tool rewrites the file and restores its size and mtime (cp -p, rsync -t, …). Its ctime
	// still moves on; rewrite until the filesystem's clock has ticked.
	before := ctime(p)
	for {
		os.WriteFile(p, []byte("version 2"), 0o644)
		os.Chtimes(p, old, old)
		if ctime(p) != before {
			break
		}
	}
	second, err := Scan(dir, nil, OpenHashCache(dir))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hashFile(p)
	if second.Entries[0].Hash != want || want == first.Entries[0].Hash {
		t.Fatalf("hash after the change %s, want %s (before: %s)", second.Entries[0].Hash, want, first.Entries[0].Hash)
	}
}

func ctime(p string) int64 {
	var st unix.Stat_t
	unix.Stat(p, &st)
	return statKey(&st).CTime
}

// The progress of an upload moves with the bytes of a large file, not once at its end.
func TestPlanWriteReportsProgressWithinAFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 10<<16), 0o644) // 10 MB
	m, err := Scan(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var total int64
	err = NewPlan(m, nil, "", ReuseLink, nil).Write(io.Discard, dir, nil, nil, func(n int64) { calls++; total += n })
	if err != nil {
		t.Fatal(err)
	}
	if total != 10<<20 || calls < 20 {
		t.Fatalf("progress told %d bytes in %d calls; want 10 MB in many", total, calls)
	}
}
