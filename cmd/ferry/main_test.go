package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-deploy/ferry/internal/cli"
	"github.com/ferry-deploy/ferry/internal/invariants"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ferry": func() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the end-to-end scripts in testdata/script, one behaviour a file, against the
// real binary. In every ferry.yaml of a script, $WORK is replaced by the script's directory.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Values[sshKey{}] = &sshState{servers: map[string]*webtest.SSHD{}}
			return filepath.WalkDir(env.WorkDir, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				return os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "$WORK", env.WorkDir)), 0o644)
			})
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"readlink":   cmdReadlink,
			"waitfile":   cmdWaitfile,
			"invariants": cmdInvariants,
			"exits":      cmdExits,
			"sshd":       cmdSSHD,
		},
	})
}

// exits CODE COMMAND [ARGS...] runs a command, keeps its output for stdout/stderr checks, and
// fails unless it exits with CODE.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// readlink LINK prints the target of a symlink.
func cmdReadlink(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: readlink LINK")
	}
	target, err := os.Readlink(ts.MkAbs(args[0]))
	if neg {
		if err == nil {
			ts.Fatalf("%s is a link to %s", args[0], target)
		}
		return
	}
	ts.Check(err)
	ts.Stdout().Write([]byte(target + "\n"))
}

// waitfile FILE polls until FILE exists (30s at most).
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 30s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// invariants ROOT [SHARED...] checks every invariant of DESIGN §2 on a settled root.
func cmdInvariants(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: invariants ROOT [SHARED...]")
	}
	errs := invariants.Check(ts.MkAbs(args[0]), invariants.Options{Settled: true, Shared: args[1:]})
	for _, err := range errs {
		ts.Logf("invariant: %v", err)
	}
	if len(errs) > 0 != neg {
		ts.Fatalf("invariants: %d violations", len(errs))
	}
}
