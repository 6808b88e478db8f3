package host

import (
	"os/exec"
	"strings"
	"testing"
)

// FuzzQuote runs the quoted word through a real sh: it must come out exactly as it went in.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "it's", "a b", "$(rm -rf /)", "`x`", "\"q\"", "new\nline", "\xff\xfe", "-n", "*", "~", "'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no shell word holds NUL; ferry never passes one
		}
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh failed on Quote(%q) = %s: %v", s, Quote(s), err)
		}
		if string(out) != s {
			t.Fatalf("Quote(%q) = %s came out as %q", s, Quote(s), out)
		}
	})
}
