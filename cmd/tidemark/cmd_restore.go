package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) restoreCmd() *cobra.Command {
	var opt app.RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot, or parts of it, into a directory",
		Args:  cobra.ExactArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			opt.Snapshot = args[0]
			res, err := r.Restore(ctx, opt)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				for _, e := range res.Errors {
					fmt.Fprintf(a.errOut, "error: %s: %s\n", e.Path, e.Err)
				}
				a.printf("restored %d files, %d dirs, %d other entries, %s from snapshot %s to %s\n",
					res.Files, res.Dirs, res.Other, humanBytes(res.Bytes), res.Snapshot.Short(), res.Target)
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("restore: %d entries could not be restored", len(res.Errors))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&opt.Target, "target", "t", "", "directory to restore into")
	cmd.Flags().StringArrayVarP(&opt.Include, "include", "i", nil, "restore only this snapshot path (repeatable), e.g. /home/me/docs")
	cmd.Flags().BoolVar(&opt.Overwrite, "overwrite", false, "replace existing files at the target")
	return cmd
}
