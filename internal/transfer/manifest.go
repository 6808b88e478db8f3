// Package transfer owns what a release holds and how it gets to a host: it scans a build into a
// manifest (path, type, size, mode, hash of every entry), decides against the previous release's
// manifest which files must cross the wire and which the host can reuse, and writes the tar
// stream that carries both. It knows nothing of release ids' meaning, locks or the CLI.
package transfer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Entry types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Entry is one path of a release.
type Entry struct {
	Path   string      // slash-separated, relative to the release
	Type   string      // TypeFile, TypeDir or TypeSymlink
	Size   int64       // files only
	Mode   fs.FileMode // permission bits (and setuid/setgid/sticky)
	Hash   string      // hex SHA-256 of a file's content
	Target string      // a symlink's target
	MTime  int64       // modification time, Unix seconds
	// Carried marks an asset the build no longer has, kept from the previous release so that
	// pages served just before the swap still load it. It is dropped one release later.
	Carried bool
}

// Manifest lists every entry of a release in lexical path order.
type Manifest struct {
	Entries []Entry
}

// jsonEntry is Entry on disk. Paths that are not valid UTF-8 (legal in Unix file names) cannot
// round-trip through a JSON string, so they are stored base64-encoded instead.
type jsonEntry struct {
	Path      string `json:"path,omitempty"`
	PathB64   string `json:"path_b64,omitempty"`
	Type      string `json:"type"`
	Size      int64  `json:"size,omitempty"`
	Mode      uint32 `json:"mode"`
	Hash      string `json:"sha256,omitempty"`
	Target    string `json:"target,omitempty"`
	TargetB64 string `json:"target_b64,omitempty"`
	MTime     int64  `json:"mtime,omitempty"`
	Carried   bool   `json:"carried,omitempty"`
}

// Marshal encodes m as JSON Lines: one entry a line, in path order. The same entry always makes
// the same line, so a host can build a release's manifest from the previous one by dropping and
// adding whole lines (see Delta), and diffs of manifests stay readable.
func (m *Manifest) Marshal() ([]byte, error) {
	lines, err := m.Lines()
	if err != nil {
		return nil, err
	}
	return JoinLines(lines), nil
}

// Lines returns the lines Marshal writes, without their newlines.
func (m *Manifest) Lines() ([][]byte, error) {
	lines := make([][]byte, len(m.Entries))
	for i, e := range m.Entries {
		line, err := marshalEntry(e)
		if err != nil {
			return nil, err
		}
		lines[i] = line
	}
	return lines, nil
}

// JoinLines makes a manifest's content of its lines.
func JoinLines(lines [][]byte) []byte {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	for _, l := range lines {
		out = append(append(out, l...), '\n')
	}
	return out
}

func marshalEntry(e Entry) ([]byte, error) {
	je := jsonEntry{Type: e.Type, Size: e.Size, Mode: uint32(e.Mode), Hash: e.Hash, MTime: e.MTime, Carried: e.Carried}
	je.Path, je.PathB64 = encodeName(e.Path)
	je.Target, je.TargetB64 = encodeName(e.Target)
	return json.Marshal(je)
}

// ParseManifest decodes what Marshal wrote, and the older single-document form
// ({"entries":[…]}). Entries come out in path order.
func ParseManifest(data []byte) (*Manifest, error) {
	var raw []jsonEntry
	if bytes.HasPrefix(data, []byte(`{"entries"`)) {
		var doc struct {
			Entries []jsonEntry `json:"entries"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("parse manifest: %w", err)
		}
		raw = doc.Entries
	} else {
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var je jsonEntry
			if err := json.Unmarshal(line, &je); err != nil {
				return nil, fmt.Errorf("parse manifest: %w", err)
			}
			raw = append(raw, je)
		}
	}
	m := &Manifest{Entries: make([]Entry, 0, len(raw))}
	for _, je := range raw {
		p, err := decodeName(je.Path, je.PathB64)
		if err != nil {
			return nil, err
		}
		t, err := decodeName(je.Target, je.TargetB64)
		if err != nil {
			return nil, err
		}
		m.Entries = append(m.Entries, Entry{Path: p, Type: je.Type, Size: je.Size, Mode: fs.FileMode(je.Mode),
			Hash: je.Hash, Target: t, MTime: je.MTime, Carried: je.Carried})
	}
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// Delta says how a host builds the manifest whose lines are next (see Lines) from prev, the
// stored manifest of the previous release: drop the lines of drop, then append the lines of add.
// stored is the result, byte for byte. ok is false when prev is not in the line form or the
// delta would not be much smaller than next itself; then next is sent whole.
func Delta(prev []byte, next [][]byte) (drop, add, stored []byte, ok bool) {
	if len(prev) == 0 || bytes.HasPrefix(prev, []byte(`{"entries"`)) || prev[len(prev)-1] != '\n' {
		return nil, nil, nil, false
	}
	// Each line of next, by its index; prev's lines are looked up without copying them.
	want := make(map[string]int, len(next))
	for i, line := range next {
		want[string(line)] = i
	}
	had := make([]bool, len(next))
	var out, dropped, added bytes.Buffer
	out.Grow(len(prev) + len(prev)/8)
	for line := range bytes.SplitSeq(prev[:len(prev)-1], []byte("\n")) {
		if i, ok := want[string(line)]; ok {
			had[i] = true
			out.Write(line)
			out.WriteByte('\n')
		} else {
			dropped.Write(line)
			dropped.WriteByte('\n')
		}
	}
	for i, line := range next {
		if !had[i] {
			added.Write(line)
			added.WriteByte('\n')
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	// A host's grep -F -f compares every line with every pattern on BusyBox: past a few
	// thousand dropped lines the whole manifest is cheaper.
	if dropped.Len()+added.Len() > out.Len()/2 || bytes.Count(dropped.Bytes(), []byte("\n")) > 2000 {
		return nil, nil, nil, false
	}
	return dropped.Bytes(), added.Bytes(), out.Bytes(), true
}

func encodeName(s string) (plain, b64 string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return "", base64.StdEncoding.EncodeToString([]byte(s))
}

func decodeName(plain, b64 string) (string, error) {
	if b64 == "" {
		return plain, nil
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("parse manifest: bad base64 name: %w", err)
	}
	return string(b), nil
}

// Index maps each path to its entry.
func (m *Manifest) Index() map[string]*Entry {
	idx := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		idx[m.Entries[i].Path] = &m.Entries[i]
	}
	return idx
}

// Without returns m less the given paths and everything below them.
func (m *Manifest) Without(paths []string) *Manifest {
	out := &Manifest{Entries: make([]Entry, 0, len(m.Entries))}
	for _, e := range m.Entries {
		if !slices.ContainsFunc(paths, func(p string) bool { return under(e.Path, p) }) {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// Has reports whether m holds p or anything below it.
func (m *Manifest) Has(p string) bool {
	return slices.ContainsFunc(m.Entries, func(e Entry) bool { return under(e.Path, p) })
}

// Files counts the regular files of m and their total size.
func (m *Manifest) Files() (n int, size int64) {
	for _, e := range m.Entries {
		if e.Type == TypeFile {
			n++
			size += e.Size
		}
	}
	return n, size
}

func under(p, base string) bool {
	return p == base || strings.HasPrefix(p, base+"/")
}
