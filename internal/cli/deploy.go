package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newDeployCmd(g *globals) *cobra.Command {
	var opts deploy.DeployOptions
	var strategy string
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Ship the source as a new release and activate it",
		Long: `Ship the source as a new release and activate it.

Phases: lock every host; prepare the release (upload only what changed, link shared
paths, run before_activate hooks); swap current on every host; run after_activate
hooks; clean up old releases. A failure before the swap changes no host's current.` + exitStatusHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch strategy {
			case "all":
			case "rolling":
				opts.Rolling = true
			default:
				return failed(g, fmt.Errorf("--strategy must be all or rolling, not %q: %w", strategy, errUsage))
			}
			if opts.Batch < 1 {
				return failed(g, fmt.Errorf("--batch must be 1 or more: %w", errUsage))
			}
			cfg, err := g.load()
			if err != nil {
				return failed(g, err)
			}
			opts.Options.Hosts, opts.Options.Parallel, opts.Options.Command = g.hosts, g.parallel, "ferry deploy"
			rep := newReporter(g)
			res, err := deploy.Deploy(cmd.Context(), cfg, opts, rep)
			rep.flush()
			if err != nil {
				err = checkSource(err, cfg)
				if g.json {
					// A machine reading stdout gets a result on failure too.
					f := jsonFailure{Type: "result", Error: err.Error(), ExitCode: exitCode(err)}
					if res != nil {
						f.Release, f.Hosts = res.Release, res.Hosts
					}
					if jerr := writeResult(g, f); jerr != nil {
						return jerr
					}
				}
				return err
			}
			if g.json {
				return writeResult(g, struct {
					Type string `json:"type"`
					OK   bool   `json:"ok"`
					*deploy.Result
				}{"result", true, res})
			}
			if res.DryRun {
				printPlan(g, res)
				return nil
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "ferry: deployed %s to %s in %s\n", res.Release, hostList(res), round(res.Duration))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Message, "message", "m", "", "note recorded with the release in the log")
	f.BoolVar(&opts.DryRun, "dry-run", false, "run the build, print the plan, and touch no host")
	f.StringVar(&opts.Ref, "ref", "", "ship a clean export of this git branch, tag or commit (the build runs in it), not the work tree")
	f.BoolVar(&opts.NoBuild, "no-build", false, "with --dry-run: plan from the build output as it is, without running the build")
	f.BoolVar(&opts.KeepFailed, "keep-failed", false, "keep a release that failed to prepare, for inspection")
	f.DurationVar(&opts.LockWait, "lock-wait", 0, "wait this long for another run's lock (e.g. 2m)")
	f.StringVar(&strategy, "strategy", "all", "activation: all (every host at once) or rolling (--batch hosts at a time)")
	f.IntVar(&opts.Batch, "batch", 1, "hosts per batch with --strategy rolling")
	return cmd
}

// jsonFailure is what --json prints for a deploy that failed: ok false, the error as the
// human output gives it, the exit status, and what is known of the release.
type jsonFailure struct {
	Type     string               `json:"type"` // "result"
	OK       bool                 `json:"ok"`
	Error    string               `json:"error"`
	ExitCode int                  `json:"exit_code"`
	Release  string               `json:"release,omitempty"`
	Hosts    []*deploy.HostResult `json:"hosts,omitempty"`
}

func hostList(res *deploy.Result) string {
	var names []string
	for _, h := range res.Hosts {
		names = append(names, h.Host)
	}
	return strings.Join(names, ", ")
}

func printPlan(g *globals, res *deploy.Result) {
	w := g.stdout
	fmt.Fprintf(w, "dry run: nothing was changed\n")
	for _, p := range res.Plans {
		fmt.Fprintf(w, "%s: %s\n", p.Host, p.Root)
		if p.NewRoot {
			fmt.Fprintf(w, "  root does not exist yet; it would be created\n")
		}
		if p.Locked != "" {
			fmt.Fprintf(w, "  locked by %s: the deploy would wait or fail\n", printable(p.Locked))
		}
		fmt.Fprintf(w, "  release   %s (current: %s)\n", p.Release, orNone(printable(p.Previous)))
		fmt.Fprintf(w, "  upload    %d files, %d to send (%d bytes), %d reused\n", p.Stats.Files, p.Stats.Sent, p.Stats.SentBytes, p.Stats.Reused)
		for _, s := range p.Shared {
			fmt.Fprintf(w, "  shared    %s\n", s)
		}
		for _, s := range p.Seed {
			fmt.Fprintf(w, "  seed      shared/%s from the build\n", s)
		}
		for _, h := range p.Hooks {
			fmt.Fprintf(w, "  hook      %s\n", h)
		}
		fmt.Fprintf(w, "  activate  current -> releases/%s\n", p.Release)
		for _, s := range p.Services {
			fmt.Fprintf(w, "  service   %s\n", s)
		}
		if p.Health != "" {
			fmt.Fprintf(w, "  health    %s\n", p.Health)
		}
		for _, h := range p.After {
			fmt.Fprintf(w, "  after     %s\n", h)
		}
		for _, id := range p.Removes {
			fmt.Fprintf(w, "  cleanup   remove %s\n", printable(id))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeResult prints the result of a deploy, rollback or cleanup as the last line of --json.
func writeResult(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// failed prints, with --json, the result line of a command that failed, and returns err.
func failed(g *globals, err error) error {
	if g.json {
		if jerr := writeResult(g, jsonFailure{Type: "result", Error: err.Error(), ExitCode: exitCode(err)}); jerr != nil {
			return jerr
		}
	}
	return err
}

func writeJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
