package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/repair"
)

func (a *cli) repairCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Bring a damaged repository back to a consistent state",
		Long: `repair index rebuilds the index from the packs themselves; run it when index
files are damaged or lost, or packs are missing. repair snapshots then writes
copies of the snapshots that reference lost data, leaving out exactly what is
gone. Both name everything that is lost. Both take an exclusive lock.`,
	}
	cmd.AddCommand(a.repairIndexCmd(), a.repairSnapshotsCmd())
	return cmd
}

func (a *cli) repairIndexCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the pack headers",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			both, err := r.RepairIndex(ctx, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(both)
			}
			res, loss := both.Index, both.Snapshots
			a.printf("index rebuilt from %d packs (%d blobs): %d index files replaced by %d\n", res.Packs, res.Blobs, res.OldFiles, res.NewFiles)
			if res.NewlyFound > 0 {
				a.printf("%d packs no index named are indexed again\n", res.NewlyFound)
			}
			for _, id := range res.Dropped {
				a.printf("lost: pack %s is named by the old index but not stored\n", id)
			}
			for _, p := range res.Unreadable {
				if p.KeptFromIndex > 0 {
					a.printf("damaged: pack %s: %s; kept the old index's %d entries for it (each blob is checked when read)\n", p.Pack, p.Err, p.KeptFromIndex)
				} else {
					a.printf("lost: pack %s: %s; no index named its blobs\n", p.Pack, p.Err)
				}
			}
			a.printLosses(loss)
			if loss.Damaged > 0 {
				a.printf("run `tidemark repair snapshots` to write snapshots without the lost data\n")
			}
			return nil
		}),
	}
}

func (a *cli) repairSnapshotsCmd() *cobra.Command {
	var opt repair.SnapshotsOptions
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "Write copies of damaged snapshots that leave out lost data",
		Long: `Find snapshots that reference data the repository no longer has and write a
repaired copy of each (tagged "repaired"): files missing any content are left
out, a directory whose listing is lost becomes empty. Every entry left out is
named. The damaged snapshots stay unless --forget is given. Run
"tidemark repair index" first if index files or packs are damaged or missing.`,
		Args: cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.RepairSnapshots(ctx, opt)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printLosses(*res)
			for old, repaired := range res.Repaired {
				a.printf("snapshot %s: repaired copy %s\n", old[:8], repaired[:8])
			}
			if res.Forgotten > 0 {
				a.printf("forgot %d damaged snapshots\n", res.Forgotten)
			}
			if opt.DryRun && res.Damaged > 0 {
				a.printf("dry run: nothing written\n")
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&opt.Forget, "forget", false, "remove each damaged snapshot once its repaired copy is stored")
	cmd.Flags().BoolVarP(&opt.DryRun, "dry-run", "n", false, "only name what is lost")
	return cmd
}

// printLosses names every entry damaged snapshots lose.
func (a *cli) printLosses(res repair.SnapshotsResult) {
	for _, id := range res.Unreadable {
		a.printf("unreadable snapshot record %s (left alone; remove it with `tidemark forget` rules or by hand)\n", id)
	}
	for _, l := range res.Losses {
		path := l.Path
		if path == "" {
			path = "/"
		}
		a.printf("snapshot %s: %s: %s\n", l.Snapshot[:8], path, l.What)
	}
	a.printf("%d of %d snapshots reference lost data\n", res.Damaged, res.Snapshots)
}
