package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) tagCmd() *cobra.Command {
	var add, remove, set []string
	var ff filterFlags
	cmd := &cobra.Command{
		Use:   "tag [SNAPSHOT...] --add TAGS | --remove TAGS | --set TAGS",
		Short: "Add, remove or replace the tags of snapshots",
		Long: `Change the tags of the snapshots named (IDs, unique prefixes or "latest"),
or, without any, of every snapshot the filters (--host, --path, --tag)
select. Tags are given as comma-separated lists, each option repeatable;
--set "" removes every tag.

Snapshot records are written once and named by their content, so a
snapshot whose tags change gets a new record, the same in everything else
and naming the record it replaces as "original" (as restic does), and the
old record is removed: its ID changes.

Examples:
  tidemark tag latest --add keep
  tidemark tag 1a2b3c4d --remove tmp --add release,v1
  tidemark tag --host laptop --path /home/me --set daily`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt := app.TagOptions{Snapshots: args, Filter: f, Add: splitTags(add), Remove: splitTags(remove),
				Set: splitTags(set), Replace: cmd.Flags().Changed("set")}
			if err := opt.Validate(); err != nil {
				return err
			}
			return a.runTag(cmd.Context(), opt)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&add, "add", nil, "add the tags of this `taglist`, tag[,tag...] (repeatable)")
	fl.StringArrayVar(&remove, "remove", nil, "remove the tags of this `taglist`, tag[,tag...] (repeatable)")
	fl.StringArrayVar(&set, "set", nil, "replace all tags with this `taglist`, tag[,tag...] (repeatable; \"\" removes every tag)")
	ff.register(fl)
	return cmd
}

func (a *cli) runTag(ctx context.Context, opt app.TagOptions) error {
	r, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Tag(ctx, opt, a.report)
	if res != nil && !a.jsonOut {
		for _, c := range res.Changed {
			tags := displayPaths(c.Tags, ",")
			if tags == "" {
				tags = "none"
			}
			a.printf("snapshot %s is now %s, tags: %s\n", c.Old.Short(), c.New.Short(), tags)
		}
	}
	if err != nil {
		return err
	}
	if a.jsonOut {
		return a.printJSON(res)
	}
	a.printf("changed the tags of %d snapshots", len(res.Changed))
	if res.Unchanged > 0 {
		a.printf(" (%d had them already)", res.Unchanged)
	}
	a.printf("\n")
	return nil
}
