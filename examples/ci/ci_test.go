// Package ci holds the CI examples; its test lints them as GitHub would read them.
package ci

import (
	"bytes"
	"os"
	"testing"

	"github.com/rhysd/actionlint"
)

// The GitHub Actions workflow passes actionlint: its syntax, expressions, contexts, and the
// inputs of the actions it uses.
func TestGitHubActionsWorkflowLints(t *testing.T) {
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever, Oneline: true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint("github-actions.yml", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s", e)
	}
	if len(errs) > 0 {
		t.Logf("%s", out.String())
	}
}
