package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanRefusesLinksThatResolveOutsideTheBuild(t *testing.T) {
	type link struct{ name, target string }
	// The chain of the review, nine directories down: u1 is the directory above it, each next
	// link one more, so that u20 is far above the build while every link's text stays inside.
	deep := "d1/d2/d3/d4/d5/d6/d7/d8/d9/"
	chain := []link{{deep + "u1", ".."}, {deep + "pw", "u20/etc/passwd"}}
	for i := 2; i <= 20; i++ {
		chain = append(chain, link{fmt.Sprintf("%su%d", deep, i), fmt.Sprintf("u%d/..", i-1)})
	}
	for _, tc := range []struct {
		name  string
		files []string
		links []link
		err   string // "" if the scan must pass, or what the error must hold
	}{
		{"a relative link inside", []string{"v2/app.css"}, []link{{"current.css", "v2/app.css"}}, ""},
		{"a link to a directory, and one through it", []string{"v2/app.css"},
			[]link{{"current", "v2"}, {"assets/app.css", "../current/app.css"}}, ""},
		{"a link up and back down", []string{"a/b/f"}, []link{{"a/b/up", "../../a/b/f"}}, ""},
		{"a dangling link inside", nil, []link{{"gone", "missing/file"}}, ""},
		{"a link to itself through its directory", []string{"a/f"}, []link{{"a/here", "."}, {"a/f2", "here/here/f"}}, ""},
		{"an absolute link", nil, []link{{"abs", "/etc/passwd"}}, `symlink "abs" points to the absolute path "/etc/passwd"`},
		{"a link whose text climbs out", []string{"a/b/f"}, []link{{"a/b/up", "../../.."}}, `symlink "a/b/up" points to "../../..", outside the build`},
		{"the chain of the review", []string{deep + "f"}, chain, `symlink "` + deep + `pw" points to "u20/etc/passwd", which resolves through other links to "/etc/passwd", outside the build`},
		{"a link through a link", []string{"s/t/f"}, []link{{"s/t/b", "../.."}, {"s/t/a", "b/../x"}}, `symlink "s/t/a" points to "b/../x", which resolves through other links to`},
		{"a link through an absolute link", []string{"s/f"}, []link{{"s/a", "z/passwd"}, {"s/z", "/etc"}}, `symlink "s/a" points to "z/passwd", which resolves through other links to "/etc/passwd", outside the build`},
		{"a loop", nil, []link{{"loop1", "loop2"}, {"loop2", "loop1"}}, `symlink "loop1" points to "loop2", which loops`},
		{"a link to itself", nil, []link{{"self", "self"}}, `symlink "self" points to "self", which loops`},
		{"a loop through directories", []string{"a/"}, []link{{"a/x", "../b/x"}, {"b", "a"}}, `symlink "a/x" points to "../b/x", which loops`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := build(t, tc.files...)
			for _, l := range tc.links {
				p := filepath.Join(dir, filepath.FromSlash(l.name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(l.target, p); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Scan(dir, nil, nil)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want one with %q", err, tc.err)
			}
		})
	}
}
