package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newUnlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Remove the lock of a run that is gone",
		Long: `Remove the lock of a run that is gone.

A lock left by a dead process on this machine is taken over by the next run on its
own; use unlock for a lock held from another machine that will not come back. Make
sure that run is really over: two runs at once on one root can break it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			holders, err := deploy.Unlock(cmd.Context(), cfg, g.options(cmd))
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g, holders)
			}
			for name, h := range holders {
				if h == nil {
					fmt.Fprintf(g.stderr, "ferry: %s: not locked\n", name)
				} else {
					fmt.Fprintf(g.stderr, "ferry: %s: removed the lock of %s\n", name, h)
				}
			}
			return nil
		},
	}
}
