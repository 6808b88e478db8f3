package config

import (
	"errors"
	"fmt"
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
			"ferry.yaml:5:17: hosts[0].vars: they change source, which must be the same on every host; only root, hooks, services, health, and the host's own ssh, roles and name, may differ per host"},
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

// A host's own entry (ssh, root, roles) sees its vars; a fleet of many hosts with vars and many
// hooks loads (each host decodes only what may differ); a host's var used by a hook that runs
// once for the fleet is refused.
func TestHostVariablesInTheHostsOwnEntry(t *testing.T) {
	c, err := Parse("ferry.yaml", []byte(`root: /srv/{{site}}
source: .
vars: {site: main, user: deploy, role: web}
hosts:
  - {ssh: "{{user}}@web1", root: "/srv/own-{{site}}", roles: ["{{role}}"], vars: {user: admin, site: w1, role: db}}
  - {ssh: "{{user}}@web2", vars: {site: w2}}
  - {ssh: "{{user}}@web3"}
hooks:
  before_activate:
    - {run: "migrate {{site}}", roles: [db]}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Hosts[0].SSH, c.Hosts[0].Root, c.Hosts[0].Roles[0], c.Hosts[1].SSH, c.Hosts[1].Root, c.Hosts[2].SSH, c.Hosts[2].Root,
		c.ForHost(0).Hooks.BeforeActivate[0].Run, c.ForHost(1).Hooks.BeforeActivate[0].Run, c.ForHost(2).Hooks.BeforeActivate[0].Run}
	want := []string{"admin@web1", "/srv/own-w1", "db", "deploy@web2", "/srv/w2", "deploy@web3", "", "migrate w1", "migrate w2", "migrate main"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	var fleet strings.Builder
	fleet.WriteString("root: /srv\nsource: .\nvars: {port: \"1\"}\nhosts:\n")
	for i := range 60 {
		fmt.Fprintf(&fleet, "  - ssh: web%d\n    vars:\n      port: \"%d\"\n", i, 8000+i)
	}
	fleet.WriteString("hooks:\n  before_activate:\n")
	for i := range 20 {
		fmt.Fprintf(&fleet, "    - run: echo hook %d on {{port}}\n      timeout: 1m\n", i)
	}
	c, err = Parse("ferry.yaml", []byte(fleet.String()))
	if err != nil {
		t.Fatalf("a fleet of 60 hosts with vars: %v", err)
	}
	if got := c.ForHost(59).Hooks.BeforeActivate[19].Run; got != "echo hook 19 on 8059" {
		t.Errorf("host 59's last hook = %q", got)
	}

	_, err = Parse("ferry.yaml", []byte("root: /srv\nsource: .\nvars: {to: ops}\nhosts:\n  - {ssh: web1, vars: {to: dev}}\nhooks:\n  on_failure: [{run: 'mail {{to}}', local: true}]\n"))
	if err == nil || !strings.Contains(err.Error(), "hosts[0].vars: they change hooks.on_failure") {
		t.Errorf("a host's var in an on_failure hook: %v; want it refused", err)
	}
	// A value a host's vars make invalid names that host.
	_, err = Parse("ferry.yaml", []byte("root: /srv\nsource: .\nvars: {h: \"http://127.0.0.1/\"}\nhosts:\n  - {ssh: web1, vars: {h: not-a-url}}\nhealth: {url: \"{{h}}\"}\n"))
	if err == nil || !strings.Contains(err.Error(), "(with the vars of hosts[0])") {
		t.Errorf("a health URL a host's vars break: %v; want the host named", err)
	}
}
