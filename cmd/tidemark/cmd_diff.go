package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// change is one difference between two snapshots.
type change struct {
	Path string `json:"path"`
	// Kind is "+" added, "-" removed, "M" content changed, "T" type
	// changed, "U" metadata changed.
	Kind string `json:"change"`
}

func (a *app) diffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Args:  cobra.ExactArgs(2),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			s1, err := snapshot.Find(ctx, r, args[0])
			if err != nil {
				return err
			}
			s2, err := snapshot.Find(ctx, r, args[1])
			if err != nil {
				return err
			}
			var changes []change
			emit := func(c change) {
				if a.jsonOut {
					changes = append(changes, c)
					return
				}
				fmt.Fprintf(a.out, "%-2s /%s\n", c.Kind, c.Path)
			}
			if err := diffTrees(ctx, r, s1.Tree, s2.Tree, "", emit); err != nil {
				return err
			}
			if a.jsonOut {
				if changes == nil {
					changes = []change{}
				}
				return a.printJSON(map[string]any{"from": s1.ID, "to": s2.ID, "changes": changes,
					"from_totals": s1.Totals, "to_totals": s2.Totals})
			}
			a.printf("size %s -> %s, files %d -> %d\n", humanBytes(s1.Totals.Bytes), humanBytes(s2.Totals.Bytes), s1.Totals.Files, s2.Totals.Files)
			return nil
		}),
	}
}

// diffTrees compares two trees; equal subtree IDs are skipped without
// loading them, so the cost follows the size of the difference.
func diffTrees(ctx context.Context, r *repo.Repository, a, b blob.ID, prefix string, emit func(change)) error {
	if a == b {
		return nil
	}
	var ta, tb *snapshot.Tree
	var err error
	if !a.IsNull() {
		if ta, err = snapshot.LoadTree(ctx, r, a); err != nil {
			return err
		}
	} else {
		ta = &snapshot.Tree{}
	}
	if !b.IsNull() {
		if tb, err = snapshot.LoadTree(ctx, r, b); err != nil {
			return err
		}
	} else {
		tb = &snapshot.Tree{}
	}
	join := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "/" + name
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		switch {
		case j >= len(tb.Nodes) || (i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name):
			n := &ta.Nodes[i]
			emit(change{join(n.Name), "-"})
			if n.Type == snapshot.Dir {
				if err := diffTrees(ctx, r, n.Subtree, blob.Null, join(n.Name), emit); err != nil {
					return err
				}
			}
			i++
		case i >= len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			n := &tb.Nodes[j]
			emit(change{join(n.Name), "+"})
			if n.Type == snapshot.Dir {
				if err := diffTrees(ctx, r, blob.Null, n.Subtree, join(n.Name), emit); err != nil {
					return err
				}
			}
			j++
		default:
			na, nb := &ta.Nodes[i], &tb.Nodes[j]
			p := join(na.Name)
			switch {
			case na.Type != nb.Type:
				emit(change{p, "T"})
				sa, sb := blob.Null, blob.Null
				if na.Type == snapshot.Dir {
					sa = na.Subtree
				}
				if nb.Type == snapshot.Dir {
					sb = nb.Subtree
				}
				if err := diffTrees(ctx, r, sa, sb, p, emit); err != nil {
					return err
				}
			case na.Type == snapshot.Dir:
				if !sameMeta(na, nb) {
					emit(change{p, "U"})
				}
				if err := diffTrees(ctx, r, na.Subtree, nb.Subtree, p, emit); err != nil {
					return err
				}
			case !sameContent(na, nb):
				emit(change{p, "M"})
			case !sameMeta(na, nb):
				emit(change{p, "U"})
			}
			i++
			j++
		}
	}
	return nil
}

func sameContent(a, b *snapshot.Node) bool {
	if a.Size != b.Size || len(a.Content) != len(b.Content) || a.Target != b.Target || a.Rdev != b.Rdev {
		return false
	}
	for k := range a.Content {
		if a.Content[k] != b.Content[k] {
			return false
		}
	}
	return true
}

func sameMeta(a, b *snapshot.Node) bool {
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.MTime != b.MTime || len(a.Xattrs) != len(b.Xattrs) ||
		a.HardLink != b.HardLink || a.MultiLink != b.MultiLink {
		return false
	}
	for k := range a.Xattrs {
		if a.Xattrs[k].Name != b.Xattrs[k].Name || string(a.Xattrs[k].Value) != string(b.Xattrs[k].Value) {
			return false
		}
	}
	return true
}
