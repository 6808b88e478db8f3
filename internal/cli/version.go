package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/ferry-deploy/ferry/internal/cli.Version=v1.2.3".
var Version = ""

// versionLine is what `ferry version` and `ferry --version` print: the version (from -ldflags,
// else the module's, else "devel"), the commit the binary was built from when Go recorded it
// (with "-dirty" for changes not committed), the platform and the Go release.
func versionLine() string {
	v, commit, dirty := Version, "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(len(s.Value), 12)]
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if commit != "" {
		v += " (" + commit
		if dirty {
			v += "-dirty"
		}
		v += ")"
	}
	return fmt.Sprintf("ferry %s %s/%s %s", v, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ferry's version",
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, versionLine())
			return nil
		},
	}
}
