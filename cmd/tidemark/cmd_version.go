package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version it was built with and the repository format it writes",
		Args:  noArgs,
		RunE: runE(func(context.Context, []string) error {
			v := app.Version()
			if a.jsonOut {
				return a.printJSON(v)
			}
			_, err := fmt.Fprintln(a.out, versionLine(v))
			return err
		}),
	}
}

// setVersion makes `tidemark --version` print what `tidemark version` does.
func (a *cli) setVersion(root *cobra.Command) {
	root.Version = versionLine(app.Version())
	root.SetVersionTemplate("{{.Version}}\n")
	// Declared here, not by cobra, for a better help line and without
	// cobra's -v: restic users know -v as --verbose.
	root.Flags().Bool("version", false, "print the version (what tidemark version prints)")
}

// versionLine is restic's version line with the commit, when the build
// recorded it, and the repository format:
// "tidemark 0.1.0 (1a2b3c4d5e6f) compiled with go1.26.8 on linux/amd64, repository format 1".
func versionLine(v app.VersionInfo) string {
	s := "tidemark " + v.Version
	if rev := v.Revision; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v.Modified {
			rev += ", modified"
		}
		s += " (" + rev + ")"
	}
	return s + fmt.Sprintf(" compiled with %s on %s/%s, repository format %d", v.GoVersion, v.OS, v.Arch, v.RepositoryFormat)
}
