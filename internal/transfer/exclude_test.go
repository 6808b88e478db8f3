package transfer

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Cases from git's own wildmatch tests (t/t3070-wildmatch.sh): the text, the pattern, and whether
// it matches with WM_PATHNAME (as paths are matched) and without (as names are).
func TestWildmatch(t *testing.T) {
	for _, tc := range []struct {
		text, pattern     string
		pathname, noSlash bool
	}{
		{"foo", "foo", true, true},
		{"foo", "bar", false, false},
		{"", "", true, true},
		{"foo", "???", true, true},
		{"foo", "??", false, false},
		{"foo", "*", true, true},
		{"foo", "f*", true, true},
		{"foo", "*f", false, false},
		{"foo", "*foo*", true, true},
		{"foobar", "*ob*a*r*", true, true},
		{"aaaaaaabababab", "*ab", true, true},
		{"foo*", `foo\*`, true, true},
		{"foobar", `foo\*bar`, false, false},
		{`f\oo`, `f\\oo`, true, true},
		{"ball", "*[al]?", true, true},
		{"ten", "[ten]", false, false},
		{"ten", "**[!te]", true, true},
		{"ten", "**[!ten]", false, false},
		{"ten", "t[a-g]n", true, true},
		{"ten", "t[!a-g]n", false, false},
		{"ton", "t[!a-g]n", true, true},
		{"ton", "t[^a-g]n", true, true},
		{"a]b", "a[]]b", true, true},
		{"a-b", "a[]-]b", true, true},
		{"a]b", "a[]-]b", true, true},
		{"aab", "a[]-]b", false, false},
		{"aab", "a[]a-]b", true, true},
		{"]", "]", true, true},

		{"foo/baz/bar", "foo*bar", false, true},
		{"foo/baz/bar", "foo**bar", false, true},
		{"foobazbar", "foo**bar", true, true},
		{"foo/baz/bar", "foo/**/bar", true, true},
		{"foo/baz/bar", "foo/**/**/bar", true, false},
		{"foo/b/a/z/bar", "foo/**/bar", true, true},
		{"foo/b/a/z/bar", "foo/**/**/bar", true, true},
		{"foo/bar", "foo/**/bar", true, false},
		{"foo/bar", "foo/**/**/bar", true, false},
		{"foo/bar", "foo?bar", false, true},
		{"foo/bar", "foo[/]bar", false, true},
		{"foo/bar", "foo[^a-z]bar", false, true},
		{"foo/bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", false, true},
		{"foo-bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", true, true},
		{"foo", "**/foo", true, false},
		{"XXX/foo", "**/foo", true, true},
		{"bar/baz/foo", "**/foo", true, true},
		{"bar/baz/foo", "*/foo", false, true},
		{"foo/bar/baz", "**/bar*", false, true},
		{"deep/foo/bar/baz", "**/bar/*", true, true},
		{"deep/foo/bar/baz/", "**/bar/*", false, true},
		{"deep/foo/bar/baz/", "**/bar/**", true, true},
		{"deep/foo/bar", "**/bar/*", false, false},
		{"deep/foo/bar/", "**/bar/**", true, true},
		{"foo/bar/baz", "**/bar**", false, true},
		{"foo/bar/baz/x", "*/bar/**", true, true},
		{"deep/foo/bar/baz/x", "*/bar/**", false, true},
		{"deep/foo/bar/baz/x", "**/bar/*/*", true, true},

		{"acrt", "a[c-c]st", false, false},
		{"acrt", "a[c-c]rt", true, true},
		{"]", "[!]-]", false, false},
		{"a", "[!]-]", true, true},
		{"", `\`, false, false},
		{`\`, `\`, false, false},
		{`XXX/\`, `*/\`, false, false},
		{`XXX/\`, `*/\\`, true, true},
		{"@foo", "@foo", true, true},
		{"foo", "@foo", false, false},
		{"[ab]", `\[ab]`, true, true},
		{"[ab]", "[[]ab]", true, true},
		{"[ab]", "[[:]ab]", true, true},
		{"[ab]", "[[::]ab]", false, false},
		{"[ab]", "[[:digit]ab]", true, true},
		{"[ab]", `[\[:]ab]`, true, true},
		{"?a?b", `\??\?b`, true, true},
		{"abc", `\a\b\c`, true, true},
		{"foo", "", false, false},
		{"foo/bar/baz/to", "**/t[o]", true, true},

		{"a1B", "[[:alpha:]][[:digit:]][[:upper:]]", true, true},
		{"a", "[[:digit:][:upper:][:space:]]", false, false},
		{"A", "[[:digit:][:upper:][:space:]]", true, true},
		{"1", "[[:digit:][:upper:][:spaci:]]", false, false},
		{" ", "[[:digit:][:upper:][:space:]]", true, true},
		{".", "[[:digit:][:upper:][:space:]]", false, false},
		{".", "[[:digit:][:punct:][:space:]]", true, true},
		{"5", "[[:xdigit:]]", true, true},
		{"f", "[[:xdigit:]]", true, true},
		{"D", "[[:xdigit:]]", true, true},
		{"_", "[[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:graph:][:lower:][:print:][:punct:][:space:][:upper:][:xdigit:]]", true, true},
		{".", "[^[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:lower:][:space:][:upper:][:xdigit:]]", true, true},
		{"5", "[a-c[:digit:]x-z]", true, true},
		{"b", "[a-c[:digit:]x-z]", true, true},
		{"y", "[a-c[:digit:]x-z]", true, true},
		{"q", "[a-c[:digit:]x-z]", false, false},

		{"]", `[\\-^]`, true, true},
		{"[", `[\\-^]`, false, false},
		{"-", `[\-_]`, true, true},
		{"]", `[\]]`, true, true},
		{`\]`, `[\]]`, false, false},
		{`\`, `[\]]`, false, false},
		{"ab", "a[]b", false, false},
		{"a[]b", "a[]b", false, false},
		{"ab[", "ab[", false, false},
		{"ab", "[!", false, false},
		{"ab", "[-", false, false},
		{"-", "[-]", true, true},
		{"-", "[a-", false, false},
		{"-", "[!a-", false, false},
		{"-", "[--A]", true, true},
		{"5", "[--A]", true, true},
		{" ", "[ --]", true, true},
		{"$", "[ --]", true, true},
		{"-", "[ --]", true, true},
		{"0", "[ --]", false, false},
		{"-", "[---]", true, true},
		{"-", "[------]", true, true},
		{"j", "[a-e-n]", false, false},
		{"-", "[a-e-n]", true, true},
		{"a", "[!------]", true, true},
		{"[", "[]-a]", false, false},
		{"^", "[]-a]", true, true},
		{"^", "[!]-a]", false, false},
		{"[", "[!]-a]", true, true},
		{"^", "[a^bc]", true, true},
		{"-b]", "[a-]b]", true, true},
		{`\`, `[\]`, false, false},
		{`\`, `[\\]`, true, true},
		{`\`, `[!\\]`, false, false},
		{"G", `[A-\\]`, true, true},
		{"aaabbb", "b*a", false, false},
		{"aabcaa", "*ba*", false, false},
		{",", "[,]", true, true},
		{",", `[\\,]`, true, true},
		{`\`, `[\\,]`, true, true},
		{"-", "[,-.]", true, true},
		{"+", "[,-.]", false, false},
		{"-.]", "[,-.]", false, false},
		{"2", `[\1-\3]`, true, true},
		{"3", `[\1-\3]`, true, true},
		{"4", `[\1-\3]`, false, false},
		{`\`, `[[-\]]`, true, true},
		{"[", `[[-\]]`, true, true},
		{"]", `[[-\]]`, true, true},
		{"-", `[[-\]]`, false, false},

		{"-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1", "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", true, true},
		{"-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1", "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", false, false},
		{"-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1", "-*-*-*-*-*-*-12-*-*-*-m-*-*-*", false, false},
		{"XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1", "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", true, true},
		{"XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1", "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*", false, false},
		{"abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt", "**/*a*b*g*n*t", true, true},
		{"abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz", "**/*a*b*g*n*t", false, false},
		{"foo", "*/*/*", false, false},
		{"foo/bar", "*/*/*", false, false},
		{"foo/bba/arr", "*/*/*", true, true},
		{"foo/bb/aa/rr", "*/*/*", false, true},
		{"foo/bb/aa/rr", "**/**/**", true, true},
		{"abcXdefXghi", "*X*i", true, true},
		{"ab/cXd/efXg/hi", "*X*i", false, true},
		{"ab/cXd/efXg/hi", "*/*X*/*/*i", true, true},
		{"ab/cXd/efXg/hi", "**/*X*/**/*i", true, true},

		{"foo", "fo", false, false},
		{"foo/bar", "foo/bar", true, true},
		{"foo/bar", "foo/*", true, true},
		{"foo/bba/arr", "foo/*", false, true},
		{"foo/bba/arr", "foo/**", true, true},
		{"foo/bba/arr", "foo*", false, true},
		{"foo/bba/arr", "foo**", false, true},
		{"foo/bba/arr", "foo/*arr", false, true},
		{"foo/bba/arr", "foo/**arr", false, true},
		{"foo/bba/arr", "foo/*z", false, false},
		{"foo/bba/arr", "foo/**z", false, false},
		{"ab/cXd/efXg/hi", "*Xg*i", false, true},

		{"a", "[A-Z]", false, false},
		{"A", "[A-Z]", true, true},
		{"a", "[[:upper:]]", false, false},
		{"A", "[B-a]", false, false},
		{"a", "[B-a]", true, true},
		{"Z", "[Z-y]", true, true},
	} {
		if got := wildmatch(tc.pattern, tc.text, true); got != tc.pathname {
			t.Errorf("wildmatch(%q, %q, pathname) = %v, want %v", tc.pattern, tc.text, got, tc.pathname)
		}
		if got := wildmatch(tc.pattern, tc.text, false); got != tc.noSlash {
			t.Errorf("wildmatch(%q, %q) = %v, want %v", tc.pattern, tc.text, got, tc.noSlash)
		}
	}
}

// The examples of gitignore(5), and the rules it states.
func TestExcludedFollowsGitignore(t *testing.T) {
	type probe struct {
		path  string
		isDir bool
		want  bool
	}
	for _, tc := range []struct {
		patterns []string
		probes   []probe
	}{
		{[]string{"frotz/"}, []probe{{"frotz", true, true}, {"a/frotz", true, true}, {"frotz", false, false}, {"frotz/x", false, true}}},
		{[]string{"doc/frotz/"}, []probe{{"doc/frotz", true, true}, {"a/doc/frotz", true, false}}},
		{[]string{"doc/frotz"}, []probe{{"doc/frotz", false, true}, {"a/doc/frotz", false, false}}},
		{[]string{"/doc/frotz"}, []probe{{"doc/frotz", false, true}, {"a/doc/frotz", false, false}}},
		{[]string{"*.html", "!foo.html"}, []probe{{"a.html", false, true}, {"foo.html", false, false}, {"d/foo.html", false, false}}},
		{[]string{"/*", "!/foo", "/foo/*", "!/foo/bar"}, []probe{
			{"x", false, true}, {"foo", true, false}, {"foo/baz", false, true}, {"foo/bar", true, false}, {"foo/bar/x", false, false},
		}},
		{[]string{"foo/*"}, []probe{{"foo/test.json", false, true}, {"foo/bar", true, true}, {"foo/bar/hello.c", false, true}, {"foo", true, false}, {"a/foo/x", false, false}}},
		{[]string{"**/foo"}, []probe{{"foo", false, true}, {"a/b/foo", false, true}, {"a/foo.c", false, false}}},
		{[]string{"**/foo/bar"}, []probe{{"foo/bar", false, true}, {"a/foo/bar", false, true}, {"foo/x/bar", false, false}}},
		{[]string{"abc/**"}, []probe{{"abc", true, false}, {"abc/x", false, true}, {"abc/x/y", false, true}, {"z/abc/x", false, false}}},
		{[]string{"a/**/b"}, []probe{{"a/b", false, true}, {"a/x/b", false, true}, {"a/x/y/b", false, true}, {"a/xb", false, false}, {"z/a/b", false, false}}},
		{[]string{"a/**/b/c"}, []probe{{"a/b/b/c", false, true}, {"a/b/c/c", false, true}, {"a/b/x/c", false, false}}},
		// A file below an excluded directory cannot be included again.
		{[]string{"build", "!build/keep"}, []probe{{"build/keep", false, true}}},
		{[]string{"logs/**", "!logs/keep.txt"}, []probe{{"logs", true, false}, {"logs/a.log", false, true}, {"logs/keep.txt", false, false}}},
		{[]string{"*", "!*/", "!*.go"}, []probe{{"main.go", false, false}, {"src", true, false}, {"src/x.go", false, false}, {"src/x.txt", false, true}}},
		{[]string{`\!important`, `\#hash`, "#comment", "trail  ", `space\ `}, []probe{
			{"!important", false, true}, {"#hash", false, true}, {"#comment", false, false}, {"trail", false, true}, {"space ", false, true}, {"space", false, false},
		}},
		{[]string{"a[!b]d", "x?z", "[[:digit:]]*.txt"}, []probe{{"aXd", false, true}, {"abd", false, false}, {"xyz", false, true}, {"x/z", false, false}, {"1.txt", false, true}}},
	} {
		for _, p := range tc.probes {
			if got := NewMatcher(tc.patterns).Match(p.path, p.isDir); got != p.want {
				t.Errorf("Match(%q, dir=%v, %q) = %v, want %v", p.path, p.isDir, tc.patterns, got, p.want)
			}
		}
	}
}

// build makes the files (and, for names ending in "/", directories) in a new directory.
func build(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shipped returns the paths of the files and links of m.
func shipped(m *Manifest) []string {
	var out []string
	for _, e := range m.Entries {
		if e.Type != TypeDir {
			out = append(out, e.Path)
		}
	}
	return out
}

var excludeFixture = []string{
	".env", ".env.local", "a/.env", "a/b/.env", "key.pem", "certs/site.pem", "a/b/c/deploy.pem",
	"logs/app.log", "logs/keep.txt", "logs/sub/x.log", "deep/logs/y.log", "logs.txt",
	"a/b/f", "a/x/b/f", "a/x/y/b", "a/xb", "z/a/b",
	"src/main.go", "src/x.txt", "build/out", "build/keep", "src/build/out", "index.html",
}

func TestScanExcludes(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"**/.env"}, []string{
			".env.local", "a/b/c/deploy.pem", "a/b/f", "a/x/b/f", "a/x/y/b", "a/xb", "build/keep", "build/out", "certs/site.pem",
			"deep/logs/y.log", "index.html", "key.pem", "logs/app.log", "logs/keep.txt", "logs/sub/x.log", "logs.txt",
			"src/build/out", "src/main.go", "src/x.txt", "z/a/b",
		}},
		{[]string{"**/*.pem", ".env*"}, []string{
			"a/b/f", "a/x/b/f", "a/x/y/b", "a/xb", "build/keep", "build/out", "deep/logs/y.log", "index.html",
			"logs/app.log", "logs/keep.txt", "logs/sub/x.log", "logs.txt", "src/build/out", "src/main.go", "src/x.txt", "z/a/b",
		}},
		{[]string{"logs/**", "!logs/keep.txt", ".*", "*.pem", "a/", "src/", "/build", "z/"}, []string{
			"deep/logs/y.log", "index.html", "logs/keep.txt", "logs.txt",
		}},
		{[]string{"a/**/b", ".*", "*.pem", "logs*", "deep/", "src/", "build/", "index.html"}, []string{"a/xb", "z/a/b"}},
		{[]string{"*", "!*/", "!*.go"}, []string{"src/main.go"}},
		{[]string{"build", "!build/keep", "!src/build/", "[a-z]*/", "!src/", ".env*", "*.pem", "*.txt", "*.html"}, []string{"src/main.go"}},
	} {
		m, err := Scan(build(t, excludeFixture...), tc.patterns, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, shipped(m)); diff != "" {
			t.Errorf("exclude %q, shipped (-want +got):\n%s", tc.patterns, diff)
		}
	}
}

// An excluded directory is not read: what it holds cannot fail the scan.
func TestScanDoesNotEnterAnExcludedDirectory(t *testing.T) {
	dir := build(t, "index.html", "node_modules/x/y.js")
	if err := os.Symlink("../../../..", filepath.Join(dir, "node_modules/x/up")); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(dir, nil, nil); err == nil {
		t.Fatal("the escaping link was not found: the test proves nothing")
	}
	for _, exclude := range [][]string{{"node_modules/"}, {"/node_modules"}, {"**/node_modules"}, {"node_*/"}} {
		m, err := Scan(dir, exclude, nil)
		if err != nil {
			t.Fatalf("exclude %q: %v", exclude, err)
		}
		if diff := cmp.Diff([]string{"index.html"}, shipped(m)); diff != "" {
			t.Errorf("exclude %q, shipped (-want +got):\n%s", exclude, diff)
		}
	}
}

// Scan ships what git would track with the same patterns in .git/info/exclude.
func TestScanExcludesWhatGitIgnores(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("FERRY_TEST_DISALLOW_SKIP") != "" {
			t.Fatal("git is not installed, and FERRY_TEST_DISALLOW_SKIP is set")
		}
		t.Skip("git is not installed")
	}
	for _, patterns := range [][]string{
		{"**/.env"}, {"**/*.pem"}, {"logs/**"}, {"logs/**", "!logs/keep.txt"}, {"a/**/b"}, {"a/**/b/f"},
		{"*", "!*/", "!*.go"}, {"build", "!build/keep"}, {"/build"}, {"build/"}, {"**/logs"}, {"**/logs/**"},
		{"logs/*", "!logs/keep.txt"}, {".env*"}, {"*.txt", "!src/*.txt"}, {"**/b"}, {"a/**"}, {"/a/b"},
		{"a/b/"}, {"?rc/", "[a-c]/**/f"}, {"*.log", "!deep/**"}, {"#.env", "\\#x"},
	} {
		dir := build(t, excludeFixture...)
		m, err := Scan(dir, patterns, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := shipped(m)
		slices.Sort(got)
		if diff := cmp.Diff(gitTracks(t, dir, patterns), got); diff != "" {
			t.Errorf("exclude %q, shipped (-git +Scan):\n%s", patterns, diff)
		}
	}
}

// gitTracks lists the files in dir that git does not ignore, with patterns as its exclude file.
func gitTracks(t *testing.T, dir string, patterns []string) []string {
	t.Helper()
	gitDir := t.TempDir()
	git := func(args ...string) []byte {
		cmd := exec.Command("git", append([]string{"--git-dir=" + gitDir, "--work-tree=" + dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+gitDir, "XDG_CONFIG_HOME="+gitDir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", args, err)
		}
		return out
	}
	git("init", "-q", "--template=")
	os.MkdirAll(filepath.Join(gitDir, "info"), 0o755)
	if err := os.WriteFile(filepath.Join(gitDir, "info/exclude"), []byte(strings.Join(patterns, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.Split(strings.TrimSuffix(string(git("ls-files", "-z", "-o", "--exclude-standard")), "\x00"), "\x00")
	if out[0] == "" {
		return nil
	}
	slices.Sort(out)
	return out
}
