package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/repo"
)

func (a *app) checkCmd() *cobra.Command {
	var opt check.Options
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure and, optionally, its data",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			if subset != "" {
				f, n, t, err := check.ParseSubset(subset)
				if err != nil {
					return fmt.Errorf("--read-data-subset: %w", err)
				}
				opt.ReadData, opt.SubsetFraction, opt.SubsetN, opt.SubsetT = true, f, n, t
			}
			// Steady: a prune replacing index files under a running check
			// would make it report blobs as missing.
			r, _, release, err := a.openLocked(ctx, repo.LockSteady, "check")
			if err != nil {
				return err
			}
			defer release()
			var problems []check.Problem
			sum, err := check.Run(ctx, r, opt, func(p check.Problem) {
				problems = append(problems, p)
				if !a.jsonOut {
					where := p.Object
					if p.Path != "" {
						where += " (" + p.Path + ")"
					}
					fmt.Fprintf(a.errOut, "problem: %s: %s: %s\n", p.Kind, where, p.Err)
				}
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				if problems == nil {
					problems = []check.Problem{}
				}
				if err := a.printJSON(map[string]any{"summary": sum, "problems": problems}); err != nil {
					return err
				}
			} else {
				a.printf("checked %d snapshots, %d trees, %d blobs in %d packs", sum.Snapshots, sum.Trees, sum.Blobs, sum.Packs)
				if opt.ReadData {
					a.printf("; read %d packs (%s)", sum.PacksRead, humanBytes(uint64(sum.BytesRead)))
				}
				a.printf("\n")
				if sum.UnreferencedPacks > 0 {
					a.printf("%d packs are not referenced by the index (left by an interrupted backup; harmless)\n", sum.UnreferencedPacks)
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("check found %d problems", len(problems))
			}
			a.printf("no problems found\n")
			return nil
		}),
	}
	cmd.Flags().BoolVar(&opt.ReadData, "read-data", false, "download and verify every pack")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "verify a subset of packs: a percentage (5%) or n/t")
	return cmd
}
