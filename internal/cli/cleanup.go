package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newCleanupCmd(g *globals) *cobra.Command {
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove old, failed and incomplete releases",
		Long: `Remove old, failed and incomplete releases.

Keeps the newest keep_releases complete releases, and always the current release and
the rollback target. Order comes from ferry's log, never from directory times.
Nothing in shared/ is touched.` + exitStatusHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return failed(g, err)
			}
			opts := g.options(cmd)
			opts.LockWait = lockWait
			rep := newReporter(g)
			removed, err := deploy.Cleanup(cmd.Context(), cfg, opts, rep)
			rep.flush()
			if err != nil {
				return failed(g, err)
			}
			if g.json {
				return writeResult(g, struct {
					Type    string              `json:"type"`
					OK      bool                `json:"ok"`
					Removed map[string][]string `json:"removed"`
				}{"result", true, removed})
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 0, "wait this long for another run's lock")
	return cmd
}
