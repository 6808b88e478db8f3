package transfer

import (
	"fmt"
	"testing"
)

// BenchmarkManifest parses and writes the manifest of a 20,000-file release, which every
// deploy does once for the live release and once for the new one.
func BenchmarkManifest(b *testing.B) {
	m := &Manifest{}
	for i := range 20000 {
		m.Entries = append(m.Entries, Entry{Path: fmt.Sprintf("public/d%03d/f%05d.txt", i/100, i), Type: TypeFile, Size: 123, Mode: 0o644, Hash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", MTime: 1700000000})
	}
	data, _ := m.Marshal()
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			ParseManifest(data)
		}
	})
	b.Run("lines", func(b *testing.B) {
		for b.Loop() {
			m.Lines()
		}
	})
}
