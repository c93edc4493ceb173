package main

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *cli) unlockCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks (of crashed clients)",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			n, err := r.RemoveStaleLocks(ctx, all)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(struct {
					Removed int `json:"removed"`
				}{n})
			}
			a.printf("removed %d locks\n", n)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "remove all locks, not only stale ones")
	return cmd
}
