package cli

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ferry-deploy/ferry/internal/deploy"
)

func newUnlockCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove the lock of a run that is gone",
		Long: `Remove the lock of a run that is gone.

A lock left by a process that is provably gone (it ran on this machine, in this
boot and pid namespace, and has exited) is taken over by the next run on its own.
Use unlock for a lock held from another machine, container or boot that will not
come back. Make sure that run is really over: two runs at once on one root can break
it. A lock whose run is still alive on this machine is kept unless --force is given.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			holders, err := deploy.Unlock(cmd.Context(), cfg, g.options(cmd), force)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g, holders)
			}
			for _, name := range slices.Sorted(maps.Keys(holders)) {
				h := holders[name]
				if h == nil {
					fmt.Fprintf(g.stderr, "ferry: %s: not locked\n", name)
				} else {
					fmt.Fprintf(g.stderr, "ferry: %s: removed the lock of %s\n", name, h)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the lock even when its run is still alive on this machine")
	return cmd
}
