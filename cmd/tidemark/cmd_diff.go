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
	var ff filterFlags
	cmd := &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Long: `Show what changed between two snapshots, each an ID, a unique prefix of one,
or "latest": the newest snapshot the filters (--host, --path, --tag) select.
Each line is a change and a path: + added, - removed, M content changed,
T type changed, U metadata changed.`,
		Args: needArgs(2, 2, "give the two snapshots to compare (IDs, unique prefixes or latest), e.g. tidemark diff 1a2b3c4d latest"),
		RunE: runE(func(ctx context.Context, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			changes := []app.Change{}
			res, err := r.Diff(ctx, app.DiffOptions{From: args[0], To: args[1], Filter: f}, func(c app.Change) {
				if a.jsonOut {
					changes = append(changes, c)
					return
				}
				fmt.Fprintf(a.out, "%-2s %s\n", c.Kind, displayPath("/"+c.Path))
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
	ff.register(cmd.Flags())
	return cmd
}
