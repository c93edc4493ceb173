package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Hard links are recorded by path: a node's HardLink names, relative to
// the snapshot's root, the first entry of the same inode, and restore
// links the node to whatever file it restored there. A record naming no
// such file, or a file with other content, is therefore restored wrongly
// without any read failing, so check compares each record with its target.
//
// The tree walk visits each tree once, but HardLink paths are absolute,
// so they are resolved per snapshot: each tree remembers its hard-linked
// files and the subdirectories holding any, and a snapshot's records are
// resolved by walking only those. Snapshots with the same root tree are
// resolved once.

// linkedFile is a file of a tree that belongs to a hard-link group.
type linkedFile struct {
	name     string
	hardLink string // "" for the first entry of its group
	size     uint64
	content  []blob.ID
}

// linkedDir is a subdirectory whose tree holds hard-linked files.
type linkedDir struct {
	name string
	tree blob.ID
}

// treeLinks is what a tree holds of hard-link groups.
type treeLinks struct {
	files []linkedFile
	dirs  []linkedDir
}

// treeLinks returns the hard-linked files of t and its subdirectories
// holding any, nil for none. The subdirectories' trees were visited first.
func (c *checker) treeLinks(t *snapshot.Tree) *treeLinks {
	var tl treeLinks
	for i := range t.Nodes {
		n := &t.Nodes[i]
		switch {
		case n.Type == snapshot.File && (n.MultiLink || n.HardLink != ""):
			tl.files = append(tl.files, linkedFile{name: n.Name, hardLink: n.HardLink, size: n.Size, content: n.Content})
		case n.Type == snapshot.Dir && c.trees[n.Subtree].links != nil:
			tl.dirs = append(tl.dirs, linkedDir{name: n.Name, tree: n.Subtree})
		}
	}
	if len(tl.files) == 0 && len(tl.dirs) == 0 {
		return nil
	}
	return &tl
}

// checkLinks reports the hard-link records of snapshot sn that name no
// file of the snapshot, or one whose size or content differ from theirs.
func (c *checker) checkLinks(ctx context.Context, sn *snapshot.Snapshot) error {
	if c.trees[sn.Tree].links == nil || c.linksChecked[sn.Tree] {
		return nil
	}
	c.linksChecked[sn.Tree] = true
	type record struct {
		path string
		tree blob.ID // holding the record
		f    *linkedFile
	}
	files := map[string]*linkedFile{}
	var records []record
	var walk func(id blob.ID, dir string)
	walk = func(id blob.ID, dir string) {
		tl := c.trees[id].links
		if tl == nil {
			return
		}
		for i := range tl.files {
			f := &tl.files[i]
			p := joinRel(dir, f.name)
			files[p] = f
			if f.hardLink != "" {
				records = append(records, record{p, id, f})
			}
		}
		for _, d := range tl.dirs {
			walk(d.tree, joinRel(dir, d.name))
		}
	}
	walk(sn.Tree, "")
	slices.SortFunc(records, func(a, b record) int { return strings.Compare(a.path, b.path) })
	for _, rec := range records {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := rec.f
		var why string
		if target, ok := files[f.hardLink]; ok {
			switch {
			case target.size != f.size:
				why = fmt.Sprintf("this entry of %d bytes is recorded as a hard link to /%s, a file of %d bytes: restore would give it that file's content",
					f.size, f.hardLink, target.size)
			case !slices.Equal(target.content, f.content):
				why = fmt.Sprintf("this entry is recorded as a hard link to /%s, whose content differs from this entry's: restore would give it that file's content",
					f.hardLink)
			}
		} else {
			why = c.missingTarget(ctx, sn.Tree, f.hardLink)
		}
		if why == "" {
			continue
		}
		key := rec.tree.String() + "\x00" + rec.path + "\x00" + why
		if c.linksReported[key] {
			continue // the same tree at the same place in another snapshot
		}
		c.linksReported[key] = true
		c.problem(Problem{Kind: KindHardLink, Object: "tree " + rec.tree.Short(), Path: "/" + rec.path, Err: why})
	}
	return ctx.Err()
}

// missingTarget says why target, which no hard-linked file of the snapshot
// has as its path, is not what a hard-link record needs; "" when the path
// cannot be looked up because a tree on it is unreadable, which is reported
// as such.
func (c *checker) missingTarget(ctx context.Context, root blob.ID, target string) string {
	n, err := snapshot.FindPath(ctx, c.r, root, target)
	switch {
	case errors.Is(err, snapshot.ErrPathNotFound):
		return fmt.Sprintf("this entry is recorded as a hard link to /%s, which is not in the snapshot: restore would make it a file of its own", target)
	case err != nil:
		return ""
	case n.Type != snapshot.File:
		return fmt.Sprintf("this entry is recorded as a hard link to /%s, which is a %s, not a file: restore would make it a file of its own", target, n.Type)
	}
	return fmt.Sprintf("this entry is recorded as a hard link to /%s, a file not recorded as hard-linked: restore would make it a file of its own", target)
}

// joinRel joins a snapshot path relative to the root and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
