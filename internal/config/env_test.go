package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const envFile = `app: example.com
root: /srv/www/example.com
source: ./build
vars: {port: "8080", user: deploy}
hosts:
  - ssh: "{{user}}@web0"
health:
  url: http://127.0.0.1:{{port}}/healthz
  contains: "{{release}}"
  timeout: 10s
hooks:
  before_activate:
    - run: echo "{{environment}} on {{port}}; token {{env.FERRY_TEST_TOKEN}}; {{.Names}}"
environments:
  staging:
    root: /srv/www/staging.example.com
    hosts: [{ssh: "{{user}}@staging1"}]
    vars: {port: "8081"}
  production:
    hosts:
      - {ssh: web1, roles: [web], vars: {port: "8082"}}
      - {ssh: web2, roles: [web]}
    health: {timeout: 20s}
`

func getenv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

// An environment overrides the file's keys (mappings merge, lists replace) and its vars; {{…}}
// stands for vars, the environment's name and the deployer's environment variables, and is left
// alone for ferry's own run-time values and for what is not a variable (a Go template).
func TestEnvironmentsMergeAndVariablesExpand(t *testing.T) {
	env := getenv(map[string]string{"FERRY_TEST_TOKEN": "s3cret"})
	staging, err := ParseWith("ferry.yaml", []byte(envFile), Options{Environment: "staging", Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{staging.Environment, staging.Root, staging.Hosts[0].SSH, staging.Health.URL, staging.Health.Contains, staging.Hooks.BeforeActivate[0].Run, time.Duration(staging.Health.Timeout).String()}
	want := []string{"staging", "/srv/www/staging.example.com", "deploy@staging1", "http://127.0.0.1:8081/healthz", "{{release}}", `echo "staging on 8081; token s3cret; {{.Names}}"`, "10s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("staging (-want +got):\n%s", diff)
	}
	prod, err := ParseWith("ferry.yaml", []byte(envFile), Options{Environment: "production", Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	got = []string{prod.Root, prod.Hosts[0].SSH, prod.Hosts[1].SSH, prod.Health.URL, time.Duration(prod.Health.Timeout).String(), prod.Hooks.BeforeActivate[0].Run}
	want = []string{"/srv/www/example.com", "web1", "web2", "http://127.0.0.1:8080/healthz", "20s", `echo "production on 8080; token s3cret; {{.Names}}"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("production (-want +got):\n%s", diff)
	}
	// web1's vars override the file's for web1 alone: its health check and hooks use its port.
	web1, web2 := prod.ForHost(0), prod.ForHost(1)
	got = []string{web1.Health.URL, web1.Hooks.BeforeActivate[0].Run, web2.Health.URL, web1.Hosts[0].SSH, time.Duration(web1.Health.Timeout).String()}
	want = []string{"http://127.0.0.1:8082/healthz", `echo "production on 8082; token s3cret; {{.Names}}"`, "http://127.0.0.1:8080/healthz", "web1", "20s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("production per host (-want +got):\n%s", diff)
	}
	if staging.ForHost(0) != staging {
		t.Errorf("a host without vars of its own has a config of its own")
	}
}

// A host's vars may change what runs on it and its root, nothing the fleet shares; a variable
// only a host defines has no value elsewhere.
func TestHostVariableErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"changes the source", "root: /srv\nsource: ./{{dir}}\nvars: {dir: build}\nhosts:\n  - {ssh: web1, vars: {dir: other}}\n",
			"ferry.yaml:5:17: hosts[0].vars: they change source, which must be the same on every host; only root, hooks, services, health may differ per host"},
		{"only a host defines it", "root: /srv\nsource: .\nhealth: {url: \"http://127.0.0.1:{{port}}/\"}\nhosts:\n  - {ssh: web1, vars: {port: 1}}\n",
			"ferry.yaml:3:15: health.url: unknown variable {{port}}: hosts[0].vars defines it, but a host's vars only override the file's; give it a default under vars"},
		{"not a mapping", "root: /srv\nsource: .\nhosts:\n  - {ssh: web1, vars: [a]}\n", "ferry.yaml:4:23: hosts[0].vars: expected a mapping of names to values"},
		{"bad name", "root: /srv\nsource: .\nhosts:\n  - {ssh: web1, vars: {release: x}}\n", `hosts[0].vars: "release" is ferry's own variable`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("ferry.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// The root may differ: it becomes the host's own.
	c, err := Parse("ferry.yaml", []byte("root: /srv/{{site}}\nsource: .\nvars: {site: a}\nhosts:\n  - {ssh: web1}\n  - {ssh: web2, vars: {site: b}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{c.Root, c.Hosts[0].Root, c.Hosts[1].Root}; !slices.Equal(got, []string{"/srv/a", "", "/srv/b"}) {
		t.Errorf("roots = %q", got)
	}
}

func TestEnvironmentAndVariableErrors(t *testing.T) {
	noToken := getenv(nil)
	token := getenv(map[string]string{"FERRY_TEST_TOKEN": "x"})
	for _, tc := range []struct {
		name, yaml, env string
		getenv          func(string) (string, bool)
		want            string
	}{
		{"none chosen", envFile, "", token, "ferry.yaml:14:1: ferry.yaml has environments (staging, production): choose one with -e NAME or FERRY_ENV=NAME"},
		{"unknown environment", envFile, "prod", token, `ferry.yaml:14:1: environment "prod" is not in ferry.yaml (environments: staging, production)`},
		{"no environments", "root: /srv\nsource: .\n", "staging", token, `-e "staging": ferry.yaml has no environments`},
		{"env var not set", envFile, "staging", noToken, "ferry.yaml:13:12: hooks.before_activate[0].run: {{env.FERRY_TEST_TOKEN}}: the environment variable FERRY_TEST_TOKEN is not set"},
		{"unknown variable", "root: /srv\nsource: .\nvars: {port: 1}\nhooks:\n  before_activate:\n    - run: echo {{prot}}\n", "", token, "ferry.yaml:6:12: hooks.before_activate[0].run: unknown variable {{prot}}: define it under vars (defined: port)"},
		{"environment without environments", "root: /srv/{{environment}}\nsource: .\n", "", token, "ferry.yaml:1:7: root: {{environment}}: ferry.yaml has no environments"},
		{"reserved var", "root: /srv\nsource: .\nvars: {release: x}\n", "", token, `ferry.yaml:3:8: vars: "release" is ferry's own variable`},
		{"bad var name", "root: /srv\nsource: .\nvars: {a-b: x}\n", "", token, `ferry.yaml:3:8: vars: "a-b" is not a variable name`},
		{"environment not a mapping", "root: /srv\nsource: .\nenvironments:\n  staging: [a]\n", "staging", token, "ferry.yaml:4:12: environments.staging: expected a mapping of settings"},
		{"nested environments", "root: /srv\nsource: .\nenvironments:\n  staging:\n    environments: {}\n", "staging", token, "ferry.yaml:5:5: environments.staging: an environment cannot have environments of its own"},
		{"unknown key in an environment", "root: /srv\nsource: .\nenvironments:\n  staging:\n    keep_release: 3\n", "staging", token, `ferry.yaml:5:5: unknown field "keep_release"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWith("ferry.yaml", []byte(tc.yaml), Options{Environment: tc.env, Getenv: tc.getenv})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v\nwant a config error containing %q", err, tc.want)
			}
		})
	}
}
