package config

import (
	"errors"
	"strings"
	"testing"
	"time"

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
		{"bad duration", "root: /srv\nsource: .\nhooks:\n  before_activate:\n    - run: x\n      timeout: 5 minutes\n", `ferry.yaml:6:16: "5 minutes" is not a duration`},
		{"hook without run", "root: /srv\nsource: .\nhooks:\n  before_activate:\n    - once: true\n", "ferry.yaml:5:11: hook needs run"},
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
		if c.Keep() < 1 || !strings.HasPrefix(c.Root, "/") {
			t.Fatalf("accepted keep %d root %q", c.Keep(), c.Root)
		}
	})
}
