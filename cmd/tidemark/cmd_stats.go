package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

func (a *app) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats [SNAPSHOT]",
		Short: "Show repository statistics, or the totals of one snapshot",
		Args:  cobra.MaximumNArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			if len(args) == 1 {
				sn, err := snapshot.Find(ctx, r, args[0])
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(map[string]any{"snapshot": sn.ID, "totals": sn.Totals, "scan": sn.Scan})
				}
				a.printf("snapshot %s: %s in %d files, %d directories, %d other entries\n", sn.ID.Short(),
					humanBytes(sn.Totals.Bytes), sn.Totals.Files, sn.Totals.Dirs, sn.Totals.Other)
				return nil
			}
			ids, err := snapshot.IDs(ctx, r)
			if err != nil {
				return err
			}
			var dataBlobs, treeBlobs, rawBytes, storedBytes uint64
			packs := map[blob.ID]struct{}{}
			r.Index().Each(func(_ blob.ID, l repo.Location) {
				if l.Type == blob.Tree {
					treeBlobs++
				} else {
					dataBlobs++
				}
				rawBytes += uint64(l.RawLen)
				storedBytes += uint64(l.Length)
				packs[l.Pack] = struct{}{}
			})
			out := map[string]any{"snapshots": len(ids), "packs": len(packs), "data_blobs": dataBlobs, "tree_blobs": treeBlobs,
				"unique_bytes": rawBytes, "stored_bytes": storedBytes}
			if a.jsonOut {
				return a.printJSON(out)
			}
			a.printf("snapshots:     %d\n", len(ids))
			a.printf("packs:         %d\n", len(packs))
			a.printf("blobs:         %d data, %d tree\n", dataBlobs, treeBlobs)
			a.printf("unique data:   %s\n", humanBytes(rawBytes))
			a.printf("stored:        %s", humanBytes(storedBytes))
			if rawBytes > 0 {
				a.printf(" (%.1f%% of unique data after compression and encryption)", 100*float64(storedBytes)/float64(rawBytes))
			}
			a.printf("\n")
			return nil
		}),
	}
}
