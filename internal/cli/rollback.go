package cli

import (
	"time"

	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:   "rollback [ID]",
		Short: "Point current back at the previous good release (or at ID)",
		Long: `Point current back at the previous good release, or at release ID.

The target is the newest complete release deployed before the current one that is
not marked bad. The release left is marked bad, so a second rollback goes further
back. Nothing is deleted.` + exitStatusHelp,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return failed(g, err)
			}
			opts := g.options(cmd)
			opts.LockWait = lockWait
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			rep := newReporter(g)
			res, err := deploy.Rollback(cmd.Context(), cfg, id, opts, rep)
			rep.flush()
			if err != nil {
				return failed(g, err)
			}
			if g.json {
				return writeResult(g, struct {
					Type string `json:"type"`
					OK   bool   `json:"ok"`
					*deploy.RollbackResult
				}{"result", true, res})
			}
			if !g.quiet {
				fmt.Fprintf(g.stderr, "ferry: rolled back from %s to %s\n", printable(res.From), printable(res.To))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 0, "wait this long for another run's lock")
	return cmd
}
