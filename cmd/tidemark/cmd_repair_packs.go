package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/repair"
)

func (a *cli) repairPacksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "packs PACK-ID...",
		Short: "Salvage damaged packs: copy their intact blobs into new packs, then remove them",
		Long: `Repair the packs that check --read-data or verify reported damaged (give
their IDs, as the reports name them: data/<ID> or trees/<ID>). Every blob of
such a pack is read on its own; those still intact are copied into new packs,
the rest are lost. The index files then name the new packs instead, and the
damaged packs are deleted, so no backup deduplicates against damaged data
again: the next backup stores it anew where the source still has it. Run
"tidemark repair snapshots" afterwards to see which files lost data.`,
		Args: needArgs(1, -1, "give the IDs of the damaged packs as check or verify named them, e.g. tidemark repair packs data/1a2b3c4d..."),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.RepairPacks(ctx, args, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			for _, s := range res.Packs.Packs {
				a.printf("repaired pack %s (%s)\n", s.Pack, s.Damage)
				a.printSalvage(s)
			}
			a.printLosses(res.Snapshots)
			if res.Snapshots.Damaged > 0 {
				a.printf("run `tidemark repair snapshots` to write snapshots without the lost data\n")
			}
			return nil
		}),
	}
}

// printSalvage says what a damaged pack's repair kept and lost.
func (a *cli) printSalvage(s repair.Salvage) {
	a.printf("  %d blobs copied into new packs, %d found intact elsewhere, %d lost\n", s.Salvaged, s.Elsewhere, len(s.Lost))
	for _, b := range s.Lost {
		a.printf("  lost: blob %s\n", b)
	}
}
