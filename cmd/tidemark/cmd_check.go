package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/check"
)

func (a *cli) checkCmd() *cobra.Command {
	var opt check.Options
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure and, optionally, its data",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			if subset != "" {
				f, n, t, err := check.ParseSubset(subset)
				if err != nil {
					return fmt.Errorf("--read-data-subset: %w", err)
				}
				opt.ReadData, opt.SubsetFraction, opt.SubsetN, opt.SubsetT = true, f, n, t
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.Check(ctx, opt, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				sum := res.Summary
				a.printf("checked %d snapshots, %d trees, %d blobs in %d packs", sum.Snapshots, sum.Trees, sum.Blobs, sum.Packs)
				if opt.ReadData {
					a.printf("; read %d packs (%s)", sum.PacksRead, humanBytes(uint64(sum.BytesRead)))
				}
				a.printf("\n")
				for _, f := range sum.UnknownFiles {
					fmt.Fprintf(a.errOut, "warning: %s is not a Tidemark object (left alone; remove it if nothing else put it there)\n", displayPath(f))
				}
				if sum.UnreferencedPacks > 0 {
					a.printf("%d packs are not referenced by the index (left by an interrupted backup; harmless)\n", sum.UnreferencedPacks)
				}
			}
			if len(res.Problems) > 0 {
				if packs := damagedPacks(res.Problems); len(packs) > 0 {
					return fmt.Errorf("check found %d problems; run `tidemark repair packs %s` to salvage the intact blobs of the damaged packs, then `tidemark repair snapshots`",
						len(res.Problems), strings.Join(packs, " "))
				}
				return fmt.Errorf("check found %d problems", len(res.Problems))
			}
			a.printf("no problems found\n")
			return nil
		}),
	}
	cmd.Flags().BoolVar(&opt.ReadData, "read-data", false, "download and verify every pack")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "verify a subset of packs: a percentage (5%) or n/t")
	cmd.Flags().BoolVar(&opt.WithCache, "with-cache", false, "read trees through the local cache instead of from the repository (faster on remote repositories, but an intact cached copy can hide a damaged stored one)")
	return cmd
}

// damagedPacks names the stored packs the problems blame (data/ID or
// trees/ID), for repair packs.
func damagedPacks(problems []check.Problem) []string {
	var out []string
	for _, p := range problems {
		switch p.Kind {
		case check.KindCorruptPack, check.KindCorruptBlob, check.KindSizeMismatch, check.KindIndexMismatch:
		default:
			continue
		}
		ns, _, ok := strings.Cut(p.Object, "/")
		if ok && (ns == "data" || ns == "trees") && !slices.Contains(out, p.Object) {
			out = append(out, p.Object)
		}
	}
	return out
}
