package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

func TestParseErrorsNamePosition(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "root: /srv\nsource: .\nkeep_release: 3\n", `ferry.yaml:3:1: unknown field "keep_release"`},
		{"wrong type", "root: /srv\nsource: .\nkeep_releases: five\n", "ferry.yaml:3:16: keep_releases must be a whole number, not five"},
		{"missing root", "source: .\n", "ferry.yaml:1:1: root is missing"},
		{"relative root", "root: srv\nsource: .\n", `ferry.yaml:1:7: root "srv" must be an absolute path`},
		{"missing source", "root: /srv\n", "source is missing"},
		{"zero keep", "root: /srv\nsource: .\nkeep_releases: 0\n", "ferry.yaml:3:16: keep_releases must be 1 or more, not 0"},
		{"negative keep", "root: /srv\nsource: .\nkeep_releases: -2\n", "ferry.yaml:3:16: keep_releases must be 1 or more, not -2"},
		{"shared dotdot", "root: /srv\nsource: .\nshared:\n  dirs: [ok, ../etc]\n", `ferry.yaml:4:14: shared path "../etc": must not contain '..'`},
		{"shared absolute", "root: /srv\nsource: .\nshared:\n  files:\n    - /etc/passwd\n", `ferry.yaml:5:7: shared path "/etc/passwd": must be relative`},
		{"shared nested", "root: /srv\nsource: .\nshared:\n  dirs: [storage, storage/logs]\n", `lies inside shared path "storage"`},
		{"shared twice", "root: /srv\nsource: .\nshared:\n  files: [.env]\n  dirs: [./.env]\n", `listed twice`},
		{"bad reuse", "root: /srv\nsource: .\nreuse: symlink\n", "ferry.yaml:3:8: reuse must be link, copy or none"},
		{"bad duration", "root: /srv\nsource: .\nhooks:\n  before_activate:\n    - run: x\n      timeout: 5 minutes\n", `ferry.yaml:6:16: hooks.before_activate[0].timeout: "5 minutes" is not a duration`},
		{"hook without run", "root: /srv\nsource: .\nhooks:\n  before_activate:\n    - once: true\n", "ferry.yaml:5:7: hook needs run"},
		{"host typo", "root: /srv\nsource: .\nhosts:\n  - lcoal\n", `ferry.yaml:4:5: host "lcoal"`},
		{"host unknown key", "root: /srv\nsource: .\nhosts:\n  - ssh: web1\n    rolez: [web]\n", `ferry.yaml:5:5: unknown field "rolez"`},
		{"duplicate key", "root: /srv\nsource: .\nroot: /x\n", `ferry.yaml:3:1: mapping key "root" already defined`},
		{"syntax", "root: [/srv\n", "ferry.yaml:1:"},
		{"source and build", "root: /srv\nsource: .\nbuild: {command: make, output: out}\n", "set either source or build"},
		{"fractional keep", "root: /srv\nsource: .\nkeep_releases: 1.9\n", "ferry.yaml:3:16: keep_releases must be a whole number, not 1.9"},
		{"quoted keep", "root: /srv\nsource: .\nkeep_releases: \"3\"\n", "ferry.yaml:3:16: keep_releases must be a whole number"},
		{"root is /", "root: /\nsource: .\n", "ferry.yaml:1:7: root must not be /"},
		{"negative hook timeout", "root: /srv\nsource: .\nhook_timeout: -5s\n", "ferry.yaml:3:15: hook_timeout must be positive"},
		{"negative health timeout", "root: /srv\nsource: .\nhealth: {url: http://127.0.0.1/, timeout: -1s}\n", "timeout must be positive"},
		{"health url without scheme", "root: /srv\nsource: .\nhealth: {url: 127.0.0.1/healthz}\n", `health url "127.0.0.1/healthz" must be an http:// or https:// URL`},
		{"root inside the source", "root: /work/site/deploy\nsource: /work/site\n", "root /work/site/deploy is inside the build /work/site"},
		{"root is the source", "root: /work/site\nsource: /work/site\n", "is inside the build"},
		{"octal keep", "root: /srv\nsource: .\nkeep_releases: 0o17\n", "ferry.yaml:3:16: keep_releases must be a whole number in decimal digits, such as 5, not 0o17"},
		{"binary keep", "root: /srv\nsource: .\nkeep_releases: 0b101\n", "ferry.yaml:3:16: keep_releases must be a whole number in decimal digits, such as 5, not 0b101"},
		{"hexadecimal status", "root: /srv\nsource: .\nhealth: {url: http://a/, expect_status: 0xC8}\n", "ferry.yaml:3:41: health.expect_status must be a whole number in decimal digits, such as 5, not 0xC8"},
		{"keep beyond 32 bits", "root: /srv\nsource: .\nkeep_releases: 3000000000\n", "ferry.yaml:3:16: keep_releases 3000000000 is out of range: keep 1 or more releases, such as 5"},
		{"negative keep beyond 32 bits", "root: /srv\nsource: .\nkeep_releases: -3000000000\n", "ferry.yaml:3:16: keep_releases -3000000000 is out of range: keep 1 or more releases"},
		{"tag that does not fit", "root: /srv\nsource: .\nkeep_releases: !!int 5m\n", "ferry.yaml:3:16: keep_releases: the YAML tag !!int does not fit 5m; remove it"},
		{"alias to a list where text goes", "root: /srv\nsource: .\nexclude: &x [a]\napp: *x\n", "ferry.yaml:4:6: app: expected a string, got a list"},
		{"second document after a %TAG directive", "%TAG !e! tag:example.com,2000:\n---\nroot: /srv\nsource: .\n---\nroot: /x\n", "ferry.yaml:5:1: a second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("ferry.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err %v is not an ErrConfig", err)
			}
		})
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	c, err := Parse("/etc/ferry/ferry.yaml", []byte("root: /srv/www\nsource: build\nshared:\n  dirs: [./public/uploads/]\nhooks:\n  before_activate:\n    - run: make\n      timeout: 90s\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		Keep    int
		Reuse   string
		Hosts   []Host
		Source  string
		Shared  []string
		Timeout time.Duration
	}{c.Keep(), c.Reuse, c.Hosts, c.SourceDir(), c.SharedPaths(), time.Duration(c.Hooks.BeforeActivate[0].Timeout)}
	want := struct {
		Keep    int
		Reuse   string
		Hosts   []Host
		Source  string
		Shared  []string
		Timeout time.Duration
	}{5, "link", []Host{{Local: true}}, "/etc/ferry/build", []string{"public/uploads"}, 90 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestParseHosts(t *testing.T) {
	c, err := Parse("ferry.yaml", []byte("root: /srv\nsource: .\nhosts:\n  - local\n  - ssh: deploy@web1:2222\n    roles: [web, migrate]\n    root: /var/www\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{Local: true}, {SSH: "deploy@web1:2222", Roles: []string{"web", "migrate"}, Root: "/var/www"}}
	if diff := cmp.Diff(want, c.Hosts); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestInitTemplateParses(t *testing.T) {
	// The template lives in package cli; this guards the same keys from the config side.
	for _, key := range []string{"app", "root", "source", "build", "exclude", "keep_releases", "shared", "reuse", "assets", "hosts", "hooks", "services", "health", "hook_timeout"} {
		if yamlKeyExists(key) == false {
			t.Errorf("Config has no key %q", key)
		}
	}
}

func yamlKeyExists(key string) bool {
	_, err := Parse("x", []byte("root: /srv\nsource: .\n"+key+": {}\n"))
	return err == nil || !strings.Contains(err.Error(), "unknown field")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("root: /srv\nsource: .\nkeep_releases: 3\nshared:\n  dirs: [a/b]\n"))
	f.Add([]byte("root: /srv\nsource: .\nhosts:\n  - local\n  - ssh: a@b:22\n"))
	f.Add([]byte("root: [\n"))
	hostile, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.yaml"))
	for _, file := range hostile {
		if data, err := os.ReadFile(file); err == nil && len(data) < 4<<10 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("ferry.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not an ErrConfig", err)
			}
			return
		}
		// Whatever parses must be safe to join to a release.
		for _, p := range c.SharedPaths() {
			if _, err := CleanRelative(p); err != nil || strings.HasPrefix(p, "/") {
				t.Fatalf("accepted shared path %q", p)
			}
		}
		if c.Keep() < 1 || !strings.HasPrefix(c.Root, "/") || path.Clean(c.Root) == "/" || slices.Contains(strings.Split(c.Root, "/"), "..") || strings.ContainsFunc(c.Root, unicode.IsControl) {
			t.Fatalf("accepted keep %d root %q", c.Keep(), c.Root)
		}
	})
}

var update = flag.Bool("update", false, "rewrite the .want files of testdata/hostile from what Load returns")

// Bounds on loading any file, however hostile.
const (
	loadTimeLimit  = 5 * time.Second // generous: the slowest case takes milliseconds, even with -race
	loadAllocLimit = 256 << 20       // bytes allocated by one load
)

var position = regexp.MustCompile(`^[0-9]+:[0-9]+: `)

// TestLoadRefusesHostileFiles loads every file of testdata/hostile. Each is a ferry.yaml that
// tries one thing a config must not get away with, says what in its first line, and has a .want
// file with what the error must say after the file's name: the line and column, then the
// message. Each must be refused with an ErrConfig, quickly, within bounded memory, and without a
// panic. Run with -update to rewrite the .want files, and review the diff.
func TestLoadRefusesHostileFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("only %d hostile files", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("# Tries: ")) {
				t.Errorf("%s does not start with a comment saying what it tries (# Tries: …)", file)
			}
			err = loadBounded(t, file)
			wantFile := strings.TrimSuffix(file, ".yaml") + ".want"
			if *update {
				msg := strings.TrimPrefix(err.Error(), file+":")
				if err := os.WriteFile(wantFile, []byte(msg+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(wantFile)
			if rerr != nil {
				t.Fatal(rerr)
			}
			w := strings.TrimSuffix(string(want), "\n")
			if !position.MatchString(w) {
				t.Fatalf("%s must start with line:column: %q", wantFile, w)
			}
			if !strings.Contains(err.Error(), file+":"+w) {
				t.Errorf("err = %v\nwant it to contain %q", err, file+":"+w)
			}
		})
	}
}

// TestLoadRefusesHugeInput covers hostile files too large to keep in testdata.
func TestLoadRefusesHugeInput(t *testing.T) {
	head := "root: /srv/www/example.com\nsource: ./build\n"
	// Host i merges host i-1 twenty times over: host 29 stands for 20^29 mappings.
	bomb := head + "hosts:\n  - &a0 {ssh: a}\n"
	for i := 1; i < 30; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 20), ", ")
		bomb += fmt.Sprintf("  - &a%d {<<: [%s], name: n%d}\n", i, refs, i)
	}
	// 16,000 aliases to one 64 KiB value stand for 1 GiB of text.
	long := "app: &a ./" + strings.Repeat("a/", maxValueSize/2-2) + "\n"
	aliases := "[" + strings.TrimSuffix(strings.Repeat("*a, ", 16_000), ", ") + "]\n"
	// 5,000 hosts each given one anchored mapping of 5,000 vars.
	var varsBomb strings.Builder
	varsBomb.WriteString(head + "x: &v {")
	for i := range 5000 {
		fmt.Fprintf(&varsBomb, "v%d: %d, ", i, i)
	}
	varsBomb.WriteString("}\nhosts:\n")
	for i := range 5000 {
		fmt.Fprintf(&varsBomb, "  - {ssh: h%d, vars: *v}\n", i)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "1:1: the file is empty"},
		{"5,000 hosts' vars of 5,000 values", varsBomb.String(), "3:32687: aliases make the file stand for far more"},
		{"64 KiB assets 16,000 times", head + long + "assets: " + aliases, "4:70: aliases make the file stand for far more text than it holds"},
		{"64 KiB exclude patterns 16,000 times", head + long + "exclude: " + aliases, "4:71: aliases make the file stand for far more text than it holds"},
		{"larger than 1 MiB", head + "app: " + strings.Repeat("a", 2<<20) + "\n", fmt.Sprintf("3:%d: the file is larger than 1 MiB", maxFileSize-len(head)+1)},
		{"brackets 100,000 deep", head + "exclude: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n", "3:42: brackets nested more than 32 deep"},
		{"lists 100,000 deep", head + "exclude:\n" + strings.Repeat("- ", 100_000) + "x\n", "4:1001: nested or indented too deeply"},
		{"keys 100,000 deep", head + "exclude:\n" + strings.Repeat("? ", 100_000) + "x\n", "4:1001: nested or indented too deeply"},
		{"braces 100,000 deep", head + "exclude: " + strings.Repeat("{a: ", 100_000) + strings.Repeat("}", 100_000) + "\n", "3:"},
		{"bomb 20^29", bomb, "7:14: aliases make the file stand for far more values than it holds"},
		{"NUL bytes only", strings.Repeat("\x00", 1<<20), "1:1: the control character U+0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ferry.yaml")
			if err := os.WriteFile(file, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			err := loadBounded(t, file)
			if !strings.Contains(err.Error(), file+":"+tc.want) {
				t.Errorf("err = %.300v\nwant it to contain %q", err, file+":"+tc.want)
			}
		})
	}
}

// TestValidateLongValuesQuickly covers values whose check once took time quadratic in their
// length: deep shared paths, and a class in an exclude pattern with many "[:".
func TestValidateLongValuesQuickly(t *testing.T) {
	const n = 256 << 10 // quadratic: seconds; linear: milliseconds
	for _, tc := range []struct {
		name string
		c    Config
	}{
		// Beside a few more paths: a map of up to 8 holds a key of another length without hashing it.
		{"shared path 256 Ki deep", Config{Shared: Shared{Dirs: append(strings.Fields("b c d e f g h i j"), strings.Repeat("a/", n)+"a")}}},
		{"exclude class 256 Ki long", Config{Exclude: []string{"[" + strings.Repeat("[:", n) + "x]"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Root, tc.c.Source, tc.c.Reuse, tc.c.Check.Nginx = "/srv/www", "/work/build", "link", "nginx -T"
			start := time.Now()
			if err := tc.c.validate(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("validate took %v", d)
			}
		})
	}
}

// loadBounded loads file and returns its error, failing the test unless that is a config error
// that came within loadTimeLimit, allocating at most loadAllocLimit, without a panic.
func loadBounded(t *testing.T, file string) error {
	t.Helper()
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: p}
			}
		}()
		_, err := Load(file)
		done <- result{err: err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(loadTimeLimit):
		t.Fatalf("Load(%s) still running after %v", file, loadTimeLimit)
	}
	if r.panicked != nil {
		t.Fatalf("Load(%s) panicked: %v", file, r.panicked)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > loadAllocLimit {
		t.Errorf("Load(%s) allocated %d MiB", file, n>>20)
	}
	if r.err == nil {
		t.Fatalf("Load(%s) accepted it", file)
	}
	if !errors.Is(r.err, ErrConfig) {
		t.Fatalf("err %v is not an ErrConfig", r.err)
	}
	if strings.Contains(r.err.Error(), "the parser failed") {
		t.Fatalf("the YAML parser panicked: %v", r.err)
	}
	return r.err
}

// TestParseAccepts guards against refusing too much: each of these is a legitimate ferry.yaml.
func TestParseAccepts(t *testing.T) {
	head := "root: /srv/www/example.com\nsource: ./build\n"
	for _, tc := range []struct {
		name, yaml string
		check      func(*Config) any // what to compare with want
		want       any
	}{
		{name: "byte order mark", yaml: "\ufeff" + head},
		{name: "CRLF line ends", yaml: strings.ReplaceAll(head+"hooks:\n  before_activate:\n    - run: |\n        echo a\n        echo b\n", "\n", "\r\n"),
			check: func(c *Config) any { return c.Hooks.BeforeActivate[0].Run }, want: "echo a\necho b\n"},
		{name: "tab after a colon", yaml: "root:\t/srv/www/example.com\nsource: ./build\n"},
		{name: "document markers", yaml: "---\n" + head + "...\n---\n"},
		{name: "quoted and tagged text", yaml: head + "app: !!str 2024\nhooks:\n  before_activate:\n    - run: 'true'\n",
			check: func(c *Config) any { return []string{c.App, c.Hooks.BeforeActivate[0].Run} }, want: []string{"2024", "true"}},
		{name: "unicode", yaml: head + "app: café.example.com\n", check: func(c *Config) any { return c.App }, want: "café.example.com"},
		{name: "null sections", yaml: head + "shared:\nhosts:\nhealth: ~\nhooks:\n  after_activate:\n",
			check: func(c *Config) any { return []any{c.Hosts, c.Health == nil} }, want: []any{[]Host{{Local: true}}, true}},
		{name: "aliases and merge keys", yaml: "root: &root /srv/www/example.com\nsource: ./build\nhosts:\n" +
			"  - &web {ssh: deploy@web1, roles: [web]}\n  - <<: *web\n    ssh: deploy@web2\n  - {<<: [{ssh: a, roles: [first]}, {ssh: b, root: /var/www}], name: web3}\n  - {ssh: web4, root: *root}\n",
			check: func(c *Config) any { return c.Hosts },
			want: []Host{{SSH: "deploy@web1", Roles: []string{"web"}}, {SSH: "deploy@web2", Roles: []string{"web"}},
				{SSH: "a", Roles: []string{"first"}, Root: "/var/www", Name: "web3"}, {SSH: "web4", Root: "/srv/www/example.com"}}},
		{name: "%YAML directive", yaml: "%YAML 1.2\n---\n" + head, check: func(c *Config) any { return c.Root }, want: "/srv/www/example.com"},
		{name: "%TAG directive", yaml: "%TAG !e! tag:example.com,2000:\n---\n" + head},
		{name: "decimal counts", yaml: head + "keep_releases: 010\nhealth: {url: http://a/, expect_status: +0204}\n",
			check: func(c *Config) any { return []int{c.Keep(), c.Health.ExpectStatus} }, want: []int{10, 204}},
		{name: "merge key after an anchor in the same mapping", yaml: head + "hosts:\n  - name: &n web1\n    <<: {ssh: *n}\n",
			check: func(c *Config) any { return c.Hosts }, want: []Host{{SSH: "web1", Name: "web1"}}},
		{name: "anchored keys", yaml: head + "&k app: example.com\nhooks: {&s before_activate: [{run: make}]}\n",
			check: func(c *Config) any { return []string{c.App, c.Hooks.BeforeActivate[0].Run} }, want: []string{"example.com", "make"}},
		{name: "core tags that fit", yaml: head + "keep_releases: !!int 3\nhosts: !!seq [local]\nhealth: !!map {url: !!str http://a/}\n" +
			"hooks:\n  before_activate:\n    - !!map\n      run: !!str |\n        make\n      once: !!bool true\n",
			check: func(c *Config) any { return []any{c.Keep(), c.Hosts, c.Health.URL, c.Hooks.BeforeActivate} },
			want:  []any{3, []Host{{Local: true}}, "http://a/", []Hook{{Run: "make\n", Once: true}}}},
		{name: "shared names like .ferry", yaml: head + "shared: {files: [.ferryrc, config/.ferry], dirs: [.ferry_cache]}\n",
			check: func(c *Config) any { return c.SharedPaths() }, want: []string{".ferryrc", "config/.ferry", ".ferry_cache"}},
		{name: "gitignore patterns", yaml: head + `exclude: ["!keep.log", "**/*.log", /tmp/, "[!a-z]*", "[[:digit:]]*", "[a-]", '\#notes', 'a\ ', "[]]"]` + "\n"},
		{name: "ssh specs", yaml: head + "hosts:\n  - ssh: deploy@web1.example.com:2222\n  - ssh: '[::1]:22'\n  - ssh: web2\n  - ssh: user@host@bastion\n"},
		{name: "a long hook", yaml: head + "hooks:\n  before_activate:\n    - run: |\n" + strings.Repeat("        echo "+strings.Repeat("x", 100)+"\n", 40)},
		{name: "everything", yaml: `app: example.com
root: /srv/www/example.com
build: {command: "npm ci && npm run build", output: dist}
exclude: [.git, "**/*.log"]
keep_releases: 16
shared:
  files: [.env, config/secrets.yml]
  dirs: [public/uploads, storage]
reuse: copy
assets: [public/build]
hosts:
  - local
  - ssh: deploy@web1.example.com:22
    roles: [web, migrate]
    name: web1
hooks:
  before_activate:
    - run: php artisan migrate --force
      once: true
      timeout: 5m
  after_activate: []
services:
  - name: php-fpm
    reload: kill -USR2 $(cat /run/php/php8.2-fpm.pid)
    restart: systemctl restart php8.2-fpm
health:
  url: https://127.0.0.1:8443/healthz
  expect_status: 204
  contains: "{{release}}"
  timeout: 30s
  interval: 500ms
hook_timeout: 10m
check:
  nginx: sudo nginx -T
  migrations: [database/migrations/]
`, check: func(c *Config) any { return c.Keep() }, want: 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("ferry.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				if diff := cmp.Diff(tc.want, tc.check(c)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

// A root reached through a link into the build is inside it all the same.
func TestRootInsideTheSourceThroughALink(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(site, filepath.Join(dir, "rootlink")); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{filepath.Join(dir, "rootlink"), filepath.Join(dir, "rootlink", "deploy", "not-yet")} {
		_, err := Parse(filepath.Join(dir, "ferry.yaml"), []byte("root: "+root+"\nsource: ./site\n"))
		if err == nil || !strings.Contains(err.Error(), "is inside the build") {
			t.Errorf("root %s: err = %v, want it refused as inside the build", root, err)
		}
	}
	if _, err := Parse(filepath.Join(dir, "ferry.yaml"), []byte("root: "+filepath.Join(dir, "srv")+"\nsource: ./site\n")); err != nil {
		t.Errorf("a root beside the build: %v", err)
	}
}
