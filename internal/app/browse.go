package app

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// SnapshotsOptions select and group the snapshots Snapshots lists.
type SnapshotsOptions struct {
	// Filter selects the snapshots (the zero Filter: all).
	Filter snapshot.Filter
	// GroupBy groups them: any of host, paths and tags, comma-separated;
	// "" lists them as one group.
	GroupBy string
}

// SnapshotInfo is one snapshot as listings show it; its JSON is what
// `snapshots --json` prints.
type SnapshotInfo struct {
	ID       blob.ID   `json:"id"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Username string    `json:"username,omitempty"`
	Roots    []string  `json:"roots"`
	Tree     blob.ID   `json:"tree"`
	Parent   *blob.ID  `json:"parent,omitempty"`
	// Original names the snapshot this one replaced (see tag and repair
	// snapshots).
	Original *blob.ID            `json:"original,omitempty"`
	Tags     []string            `json:"tags,omitempty"`
	Scan     snapshot.ScanInfo   `json:"scan"`
	Totals   snapshot.Aggregates `json:"totals"`
	Summary  snapshot.Summary    `json:"summary"`
	// Program is the program and version that wrote the snapshot.
	Program string `json:"program,omitempty"`
}

// NewSnapshotInfo describes sn for a listing.
func NewSnapshotInfo(sn *snapshot.Snapshot) SnapshotInfo {
	return SnapshotInfo{ID: sn.ID, Time: sn.Time, Host: sn.Host, Username: sn.Username, Roots: sn.Roots, Tree: sn.Tree,
		Parent: sn.Parent, Original: sn.Original, Tags: sn.Tags, Scan: sn.Scan, Totals: sn.Totals, Summary: sn.Summary, Program: sn.Program}
}

// SnapshotGroup is the snapshots of one group, oldest first.
type SnapshotGroup struct {
	Key       snapshot.GroupKey `json:"group_key"`
	Snapshots []SnapshotInfo    `json:"snapshots"`
}

// Snapshots lists the readable snapshot records opt.Filter matches, in
// groups ordered by key (one group without GroupBy, none without
// snapshots), each oldest first. Unreadable records are sent as Warning
// events: whether they match is unknown.
func (a *Repo) Snapshots(ctx context.Context, opt SnapshotsOptions, events func(Event)) ([]SnapshotGroup, error) {
	by, err := snapshot.ParseGroupBy(opt.GroupBy)
	if err != nil {
		return nil, err
	}
	sns, err := a.matching(ctx, opt.Filter, events)
	if err != nil {
		return nil, err
	}
	var groups []SnapshotGroup
	index := map[string]int{}
	for _, sn := range sns {
		key := by.Key(sn)
		i, ok := index[key.String()]
		if !ok {
			i = len(groups)
			index[key.String()] = i
			groups = append(groups, SnapshotGroup{Key: key})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, NewSnapshotInfo(sn))
	}
	slices.SortStableFunc(groups, func(x, y SnapshotGroup) int { return strings.Compare(x.Key.String(), y.Key.String()) })
	return groups, nil
}

// matching returns the readable snapshot records f matches, oldest
// first; unreadable ones are sent as Warning events.
func (a *Repo) matching(ctx context.Context, f snapshot.Filter, events func(Event)) ([]*snapshot.Snapshot, error) {
	sns, errs, err := snapshot.All(ctx, a.r)
	if err != nil {
		return nil, err
	}
	for _, e := range errs {
		emitter(events).send(Warning{Message: e.Error()})
	}
	return slices.DeleteFunc(sns, func(sn *snapshot.Snapshot) bool { return !f.Match(sn) }), nil
}

// Snapshot finds a snapshot by ID, unique prefix or "latest": the newest
// snapshot f matches (an ID must match f too). Resolving "latest" over
// unreadable snapshot records sends a Warning naming each to
// Options.Events: its time is unknown, so the snapshot returned may not
// be the newest.
func (a *Repo) Snapshot(ctx context.Context, ref string, f snapshot.Filter) (*snapshot.Snapshot, error) {
	sn, _, err := a.find(ctx, ref, f)
	return sn, err
}

// find resolves ref as Snapshot does and also returns the unreadable
// records that make "latest" uncertain.
func (a *Repo) find(ctx context.Context, ref string, f snapshot.Filter) (*snapshot.Snapshot, []*snapshot.UnreadableError, error) {
	sn, bad, err := snapshot.Find(ctx, a.r, ref, f)
	for _, u := range bad {
		msg := fmt.Sprintf("snapshot record %s%s is unreadable (%v): its time is unknown, so ", u.ID.Short(), sizeNote(u.Size), u.Err)
		if sn != nil {
			msg += fmt.Sprintf("\"latest\" (%s of %s) may not be the newest snapshot", sn.ID.Short(), sn.Time.Local().Format(time.DateTime))
		} else {
			msg += "no snapshot can be called the latest"
		}
		a.opt.emit(Warning{Message: msg})
	}
	return sn, bad, err
}

// sizeNote describes a record's stored size, "" when unknown.
func sizeNote(size int64) string {
	if size < 0 {
		return ""
	}
	return fmt.Sprintf(" (%d bytes)", size)
}

// LsOptions say what Ls lists.
type LsOptions struct {
	// Snapshot is an ID, a unique prefix or "latest" (within Filter).
	Snapshot string
	Filter   snapshot.Filter
	// Path is the snapshot path to list ("" or "/": everything).
	Path string
	// Recursive lists below Path's direct entries too (always without a
	// Path).
	Recursive bool
}

// Ls calls fn for the entry at opt.Path in the snapshot and, for a
// directory, for what is below it in depth-first order; with Recursive
// false and a path given, only for its direct entries. Paths passed to fn
// are relative to the snapshot's root.
func (a *Repo) Ls(ctx context.Context, opt LsOptions, fn func(path string, n *snapshot.Node) error) error {
	sn, err := a.Snapshot(ctx, opt.Snapshot, opt.Filter)
	if err != nil {
		return err
	}
	path := opt.Path
	prefix := strings.Trim(path, "/")
	start, err := snapshot.FindPath(ctx, a.r, sn.Tree, prefix)
	if err != nil {
		return err
	}
	if start.Type != snapshot.Dir {
		return fn(prefix, start)
	}
	return snapshot.Walk(ctx, a.r, start.Subtree, prefix, func(p string, n *snapshot.Node) error {
		if err := fn(p, n); err != nil {
			return err
		}
		if !opt.Recursive && path != "" && n.Type == snapshot.Dir {
			return snapshot.ErrSkipDir
		}
		return nil
	})
}

// SnapshotStats is one snapshot's totals.
type SnapshotStats struct {
	ID     blob.ID             `json:"snapshot"`
	Totals snapshot.Aggregates `json:"totals"`
	Scan   snapshot.ScanInfo   `json:"scan"`
}

// SnapshotStats returns the totals of snapshot ref (an ID, a unique prefix
// or "latest" within f).
func (a *Repo) SnapshotStats(ctx context.Context, ref string, f snapshot.Filter) (*SnapshotStats, error) {
	sn, err := a.Snapshot(ctx, ref, f)
	if err != nil {
		return nil, err
	}
	return &SnapshotStats{ID: sn.ID, Totals: sn.Totals, Scan: sn.Scan}, nil
}

// RepoStats describes the repository's contents.
type RepoStats struct {
	// Snapshots counts the readable snapshots the filter matched;
	// RestoreBytes and RestoreFiles add up their totals: what restoring
	// each of them would write (restic's restore-size).
	Snapshots    int    `json:"snapshots"`
	RestoreBytes uint64 `json:"restore_bytes"`
	RestoreFiles uint64 `json:"restore_files"`
	Packs        int    `json:"packs"`
	DataBlobs    uint64 `json:"data_blobs"`
	TreeBlobs    uint64 `json:"tree_blobs"`
	// UniqueBytes is the plaintext size of all blobs, StoredBytes what
	// they take after compression and encryption.
	UniqueBytes uint64 `json:"unique_bytes"`
	StoredBytes uint64 `json:"stored_bytes"`
}

// Stats counts the snapshots f matches and their sizes, and the
// repository's packs and blobs from the index (all of them: blobs are
// shared between snapshots). Unreadable snapshot records are sent as
// Warning events.
func (a *Repo) Stats(ctx context.Context, f snapshot.Filter, events func(Event)) (*RepoStats, error) {
	sns, err := a.matching(ctx, f, events)
	if err != nil {
		return nil, err
	}
	s := &RepoStats{Snapshots: len(sns)}
	for _, sn := range sns {
		s.RestoreBytes = addSat(s.RestoreBytes, sn.Totals.Bytes)
		s.RestoreFiles = addSat(s.RestoreFiles, sn.Totals.Files)
	}
	packs := map[blob.ID]struct{}{}
	if err := a.r.Index().Each(func(_ blob.ID, l repo.Location) {
		s.add(l)
		packs[l.Pack] = struct{}{}
	}); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	s.Packs = len(packs)
	return s, nil
}

// add counts one indexed blob. The sums saturate: a damaged or hostile
// index must not make a total wrap around to a small number.
func (s *RepoStats) add(l repo.Location) {
	if l.Type == blob.Tree {
		s.TreeBlobs = addSat(s.TreeBlobs, 1)
	} else {
		s.DataBlobs = addSat(s.DataBlobs, 1)
	}
	s.UniqueBytes = addSat(s.UniqueBytes, uint64(l.RawLen))
	s.StoredBytes = addSat(s.StoredBytes, uint64(l.Length))
}

// addSat returns a+b, or the largest uint64 if that overflows.
func addSat(a, b uint64) uint64 {
	sum, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return sum
}

// History returns this machine's last n backups from the state database,
// newest first.
func (a *Repo) History(ctx context.Context, n int) ([]state.Backup, error) {
	st, err := a.state()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("history needs the local state database (remove --no-cache)")
	}
	return st.History(ctx, n)
}

// Change is one difference between two snapshots.
type Change struct {
	Path string `json:"path"`
	// Kind is "+" added, "-" removed, "M" content changed, "T" type
	// changed, "U" metadata changed.
	Kind string `json:"change"`
}

// DiffResult names the two snapshots compared and their totals.
type DiffResult struct {
	From       blob.ID             `json:"from"`
	To         blob.ID             `json:"to"`
	FromTotals snapshot.Aggregates `json:"from_totals"`
	ToTotals   snapshot.Aggregates `json:"to_totals"`
}

// DiffOptions name the two snapshots Diff compares.
type DiffOptions struct {
	// From and To are IDs, unique prefixes or "latest" (within Filter).
	From, To string
	Filter   snapshot.Filter
}

// Diff compares snapshots opt.From and opt.To and calls emit for each
// difference, in path order. Equal subtrees are skipped without being
// loaded, so the cost follows the size of the difference.
func (a *Repo) Diff(ctx context.Context, opt DiffOptions, emit func(Change)) (*DiffResult, error) {
	s1, err := a.Snapshot(ctx, opt.From, opt.Filter)
	if err != nil {
		return nil, err
	}
	s2, err := a.Snapshot(ctx, opt.To, opt.Filter)
	if err != nil {
		return nil, err
	}
	if err := diffTrees(ctx, a.r, s1.Tree, s2.Tree, "", emit); err != nil {
		return nil, err
	}
	return &DiffResult{From: s1.ID, To: s2.ID, FromTotals: s1.Totals, ToTotals: s2.Totals}, nil
}

func diffTrees(ctx context.Context, r *repo.Repository, a, b blob.ID, prefix string, emit func(Change)) error {
	if a == b {
		return nil
	}
	load := func(id blob.ID) (*snapshot.Tree, error) {
		if id.IsNull() {
			return &snapshot.Tree{}, nil
		}
		return snapshot.LoadTree(ctx, r, id)
	}
	ta, err := load(a)
	if err != nil {
		return err
	}
	tb, err := load(b)
	if err != nil {
		return err
	}
	join := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "/" + name
	}
	subtree := func(n *snapshot.Node) blob.ID {
		if n.Type == snapshot.Dir {
			return n.Subtree
		}
		return blob.Null
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		switch {
		case j >= len(tb.Nodes) || (i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name):
			n := &ta.Nodes[i]
			emit(Change{join(n.Name), "-"})
			if err := diffTrees(ctx, r, subtree(n), blob.Null, join(n.Name), emit); err != nil {
				return err
			}
			i++
		case i >= len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			n := &tb.Nodes[j]
			emit(Change{join(n.Name), "+"})
			if err := diffTrees(ctx, r, blob.Null, subtree(n), join(n.Name), emit); err != nil {
				return err
			}
			j++
		default:
			na, nb := &ta.Nodes[i], &tb.Nodes[j]
			p := join(na.Name)
			switch {
			case na.Type != nb.Type:
				emit(Change{p, "T"})
				if err := diffTrees(ctx, r, subtree(na), subtree(nb), p, emit); err != nil {
					return err
				}
			case na.Type == snapshot.Dir:
				if !sameMeta(na, nb) {
					emit(Change{p, "U"})
				}
				if err := diffTrees(ctx, r, na.Subtree, nb.Subtree, p, emit); err != nil {
					return err
				}
			case !sameContent(na, nb):
				emit(Change{p, "M"})
			case !sameMeta(na, nb):
				emit(Change{p, "U"})
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
