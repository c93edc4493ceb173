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
files are damaged or lost, or packs are missing. repair packs salvages packs
that check --read-data or verify found damaged. repair snapshots then writes
copies of the snapshots that reference lost data, leaving out exactly what is
gone. All name everything that is lost. All take an exclusive lock.`,
	}
	cmd.AddCommand(a.repairIndexCmd(), a.repairPacksCmd(), a.repairSnapshotsCmd())
	return cmd
}

func (a *cli) repairIndexCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the pack headers",
		Args:  noArgs,
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
				a.printf("damaged: pack %s: %s\n", p.Pack, p.Err)
				a.printSalvage(p.Salvage)
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
named. The damaged snapshots stay unless --forget is given.

Snapshot records that cannot be read are named with their size and the
error. --forget removes those proven damaged (their bytes do not match their
name or fail authentication): nothing can be recovered from them, and prune
cannot run while they exist. A record that merely failed to read is left
alone; "tidemark forget ID" removes it.

Run "tidemark repair index" first if index files or packs are damaged or
missing.`,
		Args: noArgs,
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
			if n := removedRecords(res); n > 0 {
				a.printf("removed %d damaged snapshot records\n", n)
			}
			if opt.DryRun && (res.Damaged > 0 || len(res.Unreadable) > 0) {
				a.printf("dry run: nothing written or removed")
				if n := damagedRecords(res); opt.Forget && n > 0 {
					a.printf("; --forget would remove %d damaged snapshot records", n)
				}
				a.printf("\n")
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&opt.Forget, "forget", false, "remove each damaged snapshot once its repaired copy is stored, and the damaged snapshot records")
	cmd.Flags().BoolVarP(&opt.DryRun, "dry-run", "n", false, "only name what is lost and what --forget would remove")
	return cmd
}

// removedRecords counts the unreadable snapshot records removed.
func removedRecords(res *repair.SnapshotsResult) int {
	n := 0
	for _, u := range res.Unreadable {
		if u.Removed {
			n++
		}
	}
	return n
}

// damagedRecords counts the unreadable snapshot records proven damaged.
func damagedRecords(res *repair.SnapshotsResult) int {
	n := 0
	for _, u := range res.Unreadable {
		if u.Damaged {
			n++
		}
	}
	return n
}

// printLosses names each unreadable snapshot record with its size, the
// error and what became of it, then every entry damaged snapshots lose.
func (a *cli) printLosses(res repair.SnapshotsResult) {
	for _, u := range res.Unreadable {
		switch {
		case u.Removed:
			a.printf("removed damaged snapshot record %s (%d bytes): %s\n", u.ID, u.Size, u.Error)
		case u.Damaged:
			a.printf("damaged snapshot record %s (%d bytes): %s (left alone: `tidemark repair snapshots --forget` removes it)\n", u.ID, u.Size, u.Error)
		default:
			a.printf("unreadable snapshot record %s (%d bytes): %s (not proven damaged: the read may fail only for now, or a newer version wrote it; left alone: `tidemark forget %s` removes it)\n",
				u.ID, u.Size, u.Error, u.ID[:8])
		}
	}
	for _, l := range res.Losses {
		path := l.Path
		if path == "" {
			path = "/"
		}
		a.printf("snapshot %s: %s: %s\n", l.Snapshot[:8], displayPath(path), displayText(l.What))
	}
	a.printf("%d of %d snapshots reference lost data\n", res.Damaged, res.Snapshots)
}
