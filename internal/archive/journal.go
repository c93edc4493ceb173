package archive

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// dirtyNode is a directory on the way to (or one of) the directories a
// change journal reported. Only these are visited in a journal scan; every
// other subtree is taken from the parent snapshot by ID.
type dirtyNode struct {
	// self: the directory itself must be listed again.
	self bool
	// all: everything below it must be scanned (nothing reused by name).
	all      bool
	children map[string]*dirtyNode
}

// buildDirty turns the reported directories into a trie rooted at "/";
// trees are directories to scan whole.
func buildDirty(dirs, trees []string) *dirtyNode {
	root := &dirtyNode{}
	for _, t := range trees {
		root.add(t).all = true
	}
	for _, d := range dirs {
		root.add(d).self = true
	}
	return root
}

// add returns the node for the absolute path d, creating the way to it.
func (n *dirtyNode) add(d string) *dirtyNode {
	d = path.Clean(d)
	if d == "/" {
		return n
	}
	for _, part := range strings.Split(strings.TrimPrefix(d, "/"), "/") {
		if n.children == nil {
			n.children = map[string]*dirtyNode{}
		}
		c := n.children[part]
		if c == nil {
			c = &dirtyNode{}
			n.children[part] = c
		}
		n = c
	}
	return n
}

func (n *dirtyNode) child(name string) *dirtyNode {
	if n == nil {
		return nil
	}
	return n.children[name]
}

// subdirPlan decides, in a journal scan, how to treat subdirectory name of
// d whose parent-snapshot node is on: reuse it whole, list it, or only
// descend towards reported directories below it.
type subdirPlan int

const (
	planScanAll  subdirPlan = iota // not a journal scan, or new here: scan everything below
	planReuse                      // untouched: keep the parent's subtree
	planList                       // reported: list it, reuse untouched subdirectories
	planAncestor                   // above reported directories: keep its entries, descend
)

func (a *archiver) planSubdir(d *dirJob, name string, on *snapshot.Node, st fs.Stat, rec *scan.StatRecord) (subdirPlan, *dirtyNode) {
	if !d.journal {
		return planScanAll, nil
	}
	if on == nil || on.Type != snapshot.Dir {
		return planScanAll, nil // new or replaced: nothing to reuse
	}
	// The journal reports the directories in which something happened, so
	// a directory moved here whole, or replaced by another of the same name,
	// shows up only as a change in this directory. Reuse a subtree only if
	// it is provably the same directory object, unchanged itself.
	if rec == nil || rec.CTime == 0 || rec.Ino != st.Ino || rec.Dev != st.Dev {
		return planScanAll, nil
	}
	dt := d.dirty.child(name)
	if dt != nil && dt.all {
		return planScanAll, nil
	}
	if rec.CTime != st.CTime {
		// Its metadata or entries changed: list it again.
		if dt == nil {
			dt = &dirtyNode{self: true}
		}
		return planList, dt
	}
	switch {
	case dt == nil:
		return planReuse, nil
	case dt.self:
		return planList, dt
	}
	return planAncestor, dt
}

// errRelist asks for a directory to be listed after all because what the
// journal implied does not hold (a directory on the way vanished or changed
// type while we looked).
var errRelist = errors.New("relist")

// walkAncestor rebuilds a directory that was not reported itself but has
// reported directories below it: its entries come from the parent
// snapshot, except the subdirectories on the way down, which are stat'ed
// again (their mtime changes with their contents) and descended into.
func (a *archiver) walkAncestor(ctx context.Context, d *dirJob) error {
	l := d.listing
	if l == nil {
		l = &listing{dir: d.dir}
		a.fillOld(ctx, l, d.path, d.oldTree)
	}
	if l.oldErr != nil {
		return errRelist
	}
	if l.row.err != nil {
		return l.row.err
	}
	names := make([]string, 0, len(d.dirty.children))
	for n := range d.dirty.children {
		names = append(names, n)
	}
	sort.Strings(names)
	// Check everything first, so a fallback to listing starts clean.
	type step struct {
		idx int
		st  fs.Stat
	}
	var steps []step
	for _, name := range names {
		idx := sort.Search(len(l.old.Nodes), func(i int) bool { return l.old.Nodes[i].Name >= name })
		if idx == len(l.old.Nodes) || l.old.Nodes[idx].Name != name || l.old.Nodes[idx].Type != snapshot.Dir {
			return errRelist // reported below something that was not a directory
		}
		st, err := d.dir.Lstat(name)
		if err != nil || !st.IsDir() {
			return errRelist
		}
		steps = append(steps, step{idx, st})
	}
	d.listing = nil
	d.rowTree, d.rowRaw, d.hasRow = l.row.tree, l.row.raw, l.row.ok
	d.nodes = append([]snapshot.Node(nil), l.old.Nodes...)
	d.recs = make([]scan.StatRecord, len(d.nodes))
	// Without a valid stat row the records are unknown; recHoles marks the
	// row as unusable so it is not written.
	if l.recs != nil {
		for i := range d.nodes {
			if r := scan.FindStatRecord(l.recs, d.nodes[i].Name); r != nil {
				d.recs[i] = *r
			} else {
				d.recHoles = true
			}
		}
	} else {
		d.recHoles = true
	}
	a.prog.Dirs.Add(1)
	for _, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := &d.nodes[s.idx]
		old := *n
		p := joinPath(d.path, n.Name)
		rec := &d.recs[s.idx]
		oldRec := *rec
		if !recordMatches(rec, s.st) {
			xs, err := d.dir.Xattrs(n.Name)
			if err != nil {
				a.report(p, err, true)
			}
			n.Xattrs = convertXattrs(xs)
		}
		applyStat(n, rec, s.st)
		var prev *scan.StatRecord
		if oldRec.Name != "" {
			prev = &oldRec
		}
		plan, dt := a.planSubdir(d, n.Name, &old, s.st, prev)
		var v *vnode
		if d.only != nil {
			v = d.only[n.Name]
		}
		a.walkSubdir(ctx, d, s.idx, n.Name, p, s.st, &old, v, plan, dt)
	}
	return nil
}

// NeedFullScanError ends a journal scan that met something it cannot
// handle safely with the directories it was given; the caller falls back to
// a full scan and records the reason.
type NeedFullScanError struct{ Reason string }

func (e *NeedFullScanError) Error() string { return "journal scan not possible: " + e.Reason }

// NeedLinksError ends a journal scan that met hard-linked files that
// changed (content, metadata, names added, removed or moved) and are not
// in Options.Links: their nodes elsewhere change too. The caller adds the
// directories holding their names and scans again, or scans fully.
type NeedLinksError struct {
	// Inodes are the inodes to add, Paths a name of each (for messages),
	// sorted by path.
	Inodes []state.DevIno
	Paths  []string
}

func (e *NeedLinksError) Error() string {
	return fmt.Sprintf("journal scan needs the other names of %d hard-linked files (%s)", len(e.Inodes), strings.Join(e.Paths, ", "))
}

// needLink notes a changed hard-linked inode (met at p) whose names the
// scan must all meet; those in Options.Links it does.
func (a *archiver) needLink(key state.DevIno, p string) {
	if _, ok := a.opt.Links[key]; ok {
		return
	}
	if _, ok := a.linkMissing[key]; !ok {
		a.linkMissing[key] = p
	}
}

// linksComplete runs after the walk of a journal scan: it returns a
// NeedLinksError for changed hard-linked files whose names were not all in
// the scan's directories, and a NeedFullScanError when a file of
// Options.Links that no record held has more links than the scan met: its
// other names may be outside the backup, or in a directory the records
// cannot tell (a stat cache row missing), and only a full scan knows.
func (a *archiver) linksComplete() error {
	if len(a.linkMissing) > 0 {
		e := &NeedLinksError{}
		for key, p := range a.linkMissing {
			e.Inodes = append(e.Inodes, key)
			e.Paths = append(e.Paths, p)
		}
		sort.Sort(byPath{e})
		return e
	}
	for key, n := range a.linkNlink {
		if seen := a.linkSeen[key]; uint64(seen) < n {
			return &NeedFullScanError{Reason: fmt.Sprintf("a hard-linked file (inode %d) has %d links, %d of them where this backup can place its names: the others may be anywhere", key.Ino, n, seen)}
		}
	}
	return nil
}

type byPath struct{ e *NeedLinksError }

func (b byPath) Len() int           { return len(b.e.Paths) }
func (b byPath) Less(i, j int) bool { return b.e.Paths[i] < b.e.Paths[j] }
func (b byPath) Swap(i, j int) {
	b.e.Paths[i], b.e.Paths[j] = b.e.Paths[j], b.e.Paths[i]
	b.e.Inodes[i], b.e.Inodes[j] = b.e.Inodes[j], b.e.Inodes[i]
}

// checkRemovedLinks looks, in a journal scan, at the parent's entries of a
// listed directory for hard-linked files whose name is gone, replaced or
// changed, directly or in a subdirectory that is now gone or replaced:
// their other names' nodes (link flags, first-link paths) change too, so
// their inodes must be in Options.Links (needLink). The stat cache names
// the inodes; where it cannot, only a full scan can find the other names.
func (a *archiver) checkRemovedLinks(ctx context.Context, d *dirJob, l *listing, old *snapshot.Tree, oldRecs []scan.StatRecord) error {
	for i := range old.Nodes {
		on := &old.Nodes[i]
		p := joinPath(d.path, on.Name)
		k := sort.SearchStrings(l.names, on.Name)
		present := k < len(l.names) && l.names[k] == on.Name && l.statErrs[k] == nil
		if on.MultiLink {
			rec := scan.FindStatRecord(oldRecs, on.Name)
			if present && l.stats[k].IsRegular() && recordMatches(rec, l.stats[k]) {
				continue // unchanged
			}
			if rec == nil || rec.Ino == 0 {
				return &NeedFullScanError{Reason: "hard-linked file changed, and the stat cache does not say which inode it was: " + p}
			}
			a.needLink(state.DevIno{Dev: rec.Dev, Ino: rec.Ino}, p)
			continue
		}
		if on.Type != snapshot.Dir {
			continue
		}
		gone := !present || !l.stats[k].IsDir()
		if !gone {
			if plan, _ := a.planSubdir(d, on.Name, on, l.stats[k], scan.FindStatRecord(oldRecs, on.Name)); plan != planScanAll {
				continue
			}
		}
		if err := a.linksBelow(ctx, on.Subtree, p); err != nil {
			return err
		}
	}
	return nil
}

// linksBelow notes (needLink) the hard-linked files of a subtree of the
// parent snapshot that was removed or replaced at path p, their inodes
// taken from the stat cache rows recorded with those very trees. Its cost
// follows the size of what was removed.
func (a *archiver) linksBelow(ctx context.Context, id blob.ID, p string) error {
	t, err := snapshot.LoadTree(ctx, a.repo, id)
	if err != nil {
		return err
	}
	var recs []scan.StatRecord
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.MultiLink {
			if recs == nil {
				if recs, err = a.rowFor(p, id); err != nil {
					return err
				}
			}
			rec := scan.FindStatRecord(recs, n.Name)
			if rec == nil || rec.Ino == 0 {
				return &NeedFullScanError{Reason: "hard-linked files in a removed or replaced directory, and the stat cache does not say which inodes: " + p}
			}
			a.needLink(state.DevIno{Dev: rec.Dev, Ino: rec.Ino}, joinPath(p, n.Name))
		}
		if n.Type == snapshot.Dir {
			if err := a.linksBelow(ctx, n.Subtree, joinPath(p, n.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowFor returns the stat records of directory p if the stat cache row
// was recorded with tree id (else none: they may describe another state).
func (a *archiver) rowFor(p string, id blob.ID) ([]scan.StatRecord, error) {
	if a.opt.Stats == nil {
		return []scan.StatRecord{}, nil
	}
	tree, raw, ok, err := a.opt.Stats.DirStats(a.opt.StatSet, p)
	if err != nil {
		return nil, err
	}
	if !ok || tree != id {
		return []scan.StatRecord{}, nil
	}
	recs, err := scan.DecodeStatRecords(raw)
	if err != nil {
		return []scan.StatRecord{}, nil // a damaged row is no row
	}
	return recs, nil
}
