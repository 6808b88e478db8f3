// Package cli is ferry's command line: one file per command, each building a cobra command that
// parses flags and calls into package deploy, then prints the result. Everything for people goes
// to stderr as "ferry: error: …", "ferry: warning: …", "ferry: hint: …"; machine output (--json,
// tables) goes to stdout. Errors are mapped to exit codes in one place, exitCode.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/config"
	"github.com/ferry-deploy/ferry/internal/deploy"
	hostssh "github.com/ferry-deploy/ferry/internal/host/ssh"
	"github.com/ferry-deploy/ferry/internal/release"
	"github.com/ferry-deploy/ferry/internal/transfer"
)

// Exit codes (DESIGN §7).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitLocked = 3
)

const exitStatusHelp = `
EXIT STATUS
  0  done
  1  failed (rolled back or untouched, as reported)
  2  usage or config error; nothing was changed
  3  locked by another run; nothing was changed`

// globals are the flags every command has.
type globals struct {
	config   string
	env      string
	hosts    []string
	json     bool
	quiet    bool
	verbose  bool
	parallel int
	stdout   io.Writer
	stderr   io.Writer
}

// errUsage marks errors in the command line itself.
var errUsage = errors.New("usage error")

// Main runs ferry with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Zero-downtime deploys without Kubernetes",
		Long:          "ferry ships a build to one host or a fleet as a new release, swaps current atomically,\nand keeps shared state, rollback and cleanup right." + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", err, errUsage) })
	pf := root.PersistentFlags()
	pf.StringVarP(&g.config, "config", "c", "ferry.yaml", "config file")
	pf.StringVarP(&g.env, "environment", "e", os.Getenv("FERRY_ENV"), "the environment of ferry.yaml to use (default $FERRY_ENV)")
	pf.StringSliceVar(&g.hosts, "host", nil, "limit to these hosts (by name; repeat or comma-separate)")
	pf.BoolVar(&g.json, "json", false, "machine-readable output on stdout")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print only warnings and errors")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print more detail")
	pf.IntVar(&g.parallel, "parallel", 10, "hosts to work on at once")
	root.AddCommand(
		newInitCmd(g), newDeployCmd(g), newRollbackCmd(g), newReleasesCmd(g), newStatusCmd(g),
		newCleanupCmd(g), newUnlockCmd(g), newCheckCmd(g), newRunCmd(g), newVersionCmd(g),
	)
	for _, c := range root.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// cobra's "unknown command" for ferry itself; wrapArgs marks the errors of subcommands.
	if strings.HasPrefix(err.Error(), "unknown command") && !errors.Is(err, errUsage) {
		err = fmt.Errorf("%w: %w", err, errUsage)
	}
	printError(stderr, err)
	return exitCode(err)
}

// wrapArgs marks a wrong number of arguments as a usage error. A command that sets no Args
// takes none.
func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check == nil {
			if len(args) > 0 {
				return fmt.Errorf("%s takes no arguments, got %q: %w", cmd.CommandPath(), args[0], errUsage)
			}
			return nil
		}
		if err := check(cmd, args); err != nil {
			return fmt.Errorf("%w: %w", err, errUsage)
		}
		return nil
	}
}

// sourceError is a build that cannot be shipped as it is: the source directory is missing or
// not a directory, or it holds a fifo, socket or device. The fix is in ferry.yaml or the build,
// and nothing was touched, so it exits 2 like a config error.
type sourceError struct {
	err  error
	hint string
}

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// checkSource marks err as a sourceError, with a hint, when it is the scan refusing cfg's source.
func checkSource(err error, cfg *config.Config) error {
	key := "source"
	if cfg.Build != nil {
		key = "build.output"
	}
	var se *transfer.SourceError
	switch {
	case !errors.As(err, &se):
		return err
	case se.Path == "":
		return &sourceError{err, fmt.Sprintf("set %s in %s to the directory to ship", key, cfg.File)}
	default:
		return &sourceError{err, fmt.Sprintf("remove %q from the build, make it a file, directory or a link inside the build, or add it to exclude: in %s", se.Path, cfg.File)}
	}
}

// exitCode maps an error to ferry's exit status. It is the only place that does.
func exitCode(err error) int {
	var se *sourceError
	var he *hostExit
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, release.ErrLocked):
		return exitLocked
	case errors.Is(err, config.ErrConfig), errors.Is(err, errUsage), errors.As(err, &se):
		return exitUsage
	default:
		return exitFailed
	}
}

func printError(w io.Writer, err error) {
	msg := err.Error()
	msg = strings.TrimSuffix(msg, ": "+errUsage.Error())
	msg = strings.TrimSuffix(msg, ": "+config.ErrConfig.Error())
	msg = strings.TrimSuffix(msg, ": "+deploy.ErrNothingToDo.Error())
	fmt.Fprintf(w, "ferry: error: %s\n", msg)
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "ferry: hint: %s\n", hint)
	}
}

func hintFor(err error) string {
	var he *release.HintError
	var le *release.LockedError
	var ce *config.Error
	var hk *hostssh.HostKeyError
	var se *sourceError
	switch {
	case errors.As(err, &se):
		return se.hint
	case errors.As(err, &he):
		return he.Hint
	case errors.As(err, &le):
		return "wait for that run, queue behind it with --lock-wait 2m, or run 'ferry unlock' if it is gone"
	case errors.As(err, &hk):
		return hk.Hint
	case errors.As(err, &ce) && strings.Contains(ce.Msg, "ferry init"):
		return "run 'ferry init' to write a commented ferry.yaml"
	case errors.Is(err, errUsage):
		return "run 'ferry --help' for usage"
	}
	return ""
}

// load reads the config named by --config.
func (g *globals) load() (*config.Config, error) {
	return config.LoadWith(g.config, config.Options{Environment: g.env})
}

// status reads every host's state for 'ferry status' and 'ferry releases'; with --json it has
// already printed it.
func (g *globals) status(cmd *cobra.Command) ([]*deploy.HostStatus, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	// A host that cannot be read does not hide the others: they are shown, and the error
	// (exit 1) names it.
	hosts, err := deploy.Status(cmd.Context(), cfg, g.options(cmd))
	if hosts != nil && g.json {
		if jerr := writeJSON(g, hosts); jerr != nil {
			return hosts, jerr
		}
	}
	return hosts, err
}

// options builds the options every command shares.
func (g *globals) options(cmd *cobra.Command) deploy.Options {
	return deploy.Options{Hosts: g.hosts, Parallel: g.parallel, Command: "ferry " + cmd.Name()}
}
