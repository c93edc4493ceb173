package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := app.Init(ctx, a.options(true))
			if err != nil {
				return err
			}
			defer r.Close()
			if a.jsonOut {
				return a.printJSON(struct {
					ID       string `json:"id"`
					Location string `json:"location"`
				}{r.ID(), r.Location()})
			}
			a.printf("created repository %s at %s\n", r.ID()[:10], r.Location())
			return nil
		}),
	}
}
