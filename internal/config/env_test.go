package config

import (
	"errors"
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
      - {ssh: web1, roles: [web]}
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
