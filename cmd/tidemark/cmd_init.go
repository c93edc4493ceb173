package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/repo"
)

func (a *app) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			loc, err := a.location()
			if err != nil {
				return err
			}
			pw, err := a.password(true)
			if err != nil {
				return err
			}
			be, err := location.Create(ctx, loc, a.backendOptions())
			if err != nil {
				return err
			}
			r, err := repo.Init(ctx, be, pw, a.repoOptions())
			if err != nil {
				return err
			}
			defer r.Close()
			if a.jsonOut {
				return a.printJSON(map[string]any{"id": r.Config().ID, "location": loc})
			}
			a.printf("created repository %s at %s\n", r.Config().ID[:10], loc)
			return nil
		}),
	}
}
