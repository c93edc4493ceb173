package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

// diffJSON is diff's --json output.
type diffJSON struct {
	*app.DiffResult
	Changes []app.Change `json:"changes"`
}

func (a *cli) diffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Args:  cobra.ExactArgs(2),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			changes := []app.Change{}
			res, err := r.Diff(ctx, args[0], args[1], func(c app.Change) {
				if a.jsonOut {
					changes = append(changes, c)
					return
				}
				fmt.Fprintf(a.out, "%-2s /%s\n", c.Kind, c.Path)
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(diffJSON{DiffResult: res, Changes: changes})
			}
			a.printf("size %s -> %s, files %d -> %d\n", humanBytes(res.FromTotals.Bytes), humanBytes(res.ToTotals.Bytes), res.FromTotals.Files, res.ToTotals.Files)
			return nil
		}),
	}
}
