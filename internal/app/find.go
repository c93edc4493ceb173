package app

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/pattern"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// FindOptions say what Find looks for, and in which snapshots.
type FindOptions struct {
	// Patterns are matched against every entry's path (package pattern):
	// one without '/' against its name ("*.odt"), an anchored one
	// against the whole path ("/home/*/work"). An entry matching any is
	// found.
	Patterns []string
	// IgnoreCase matches letters whatever their case.
	IgnoreCase bool
	// Newer and Older bound the entries' modification times: found are
	// only entries modified after Newer and before Older (zero: no bound).
	Newer, Older time.Time
	// Snapshots are IDs, unique prefixes or "latest" (within Filter);
	// none means every snapshot Filter selects.
	Snapshots []string
	Filter    snapshot.Filter
}

// FindMatch is one entry found.
type FindMatch struct {
	Path string `json:"path"`
	// PathBytes is set when Path is not valid UTF-8, which JSON cannot
	// carry (encoding/json replaces each invalid byte with U+FFFD): the
	// path's exact bytes, base64 in JSON.
	PathBytes []byte            `json:"path_bytes,omitempty"`
	Type      snapshot.NodeType `json:"type"`
	Mode      uint32            `json:"mode"`
	UID       uint32            `json:"uid"`
	GID       uint32            `json:"gid"`
	Size      uint64            `json:"size"`
	MTime     time.Time         `json:"mtime"`
	Target    string            `json:"target,omitempty"`
}

// FindResult says how much Find searched and read.
type FindResult struct {
	// Snapshots counts the snapshots searched, Matches what was found in
	// all of them (an entry in three snapshots counts three times).
	Snapshots int `json:"snapshots"`
	Matches   int `json:"matches"`
	// TreesRead counts the directory listings read; TreesReused the
	// subtrees met again (in an earlier snapshot or elsewhere in this
	// one: the same tree at the same place, or anywhere for name
	// patterns), whose matches were known without reading them.
	TreesRead   int `json:"trees_read"`
	TreesReused int `json:"trees_reused"`
	// Errors names the directories that could not be read, per snapshot.
	Errors []string `json:"errors"`
}

// Find searches the snapshots for entries matching opt.Patterns and calls
// fn for each match: snapshot by snapshot, oldest first, each snapshot's
// matches in path order (depth-first, names sorted) and one after the
// other. Trees come through the local cache; a subtree met again in a
// later snapshot (snapshots share most of theirs) is not read again, and
// its matches are reported in that snapshot too. Only subtrees an
// anchored pattern can match in are read. Directories that cannot be read
// are listed in the result and the search goes on.
func (a *Repo) Find(ctx context.Context, opt FindOptions, fn func(sn *snapshot.Snapshot, m FindMatch) error) (*FindResult, error) {
	if len(opt.Patterns) == 0 {
		return nil, errors.New("find: give a pattern")
	}
	pats, err := pattern.NewList("find", opt.Patterns, opt.IgnoreCase)
	if err != nil {
		return nil, err
	}
	if !opt.Newer.IsZero() && !opt.Older.IsZero() && !opt.Newer.Before(opt.Older) {
		return nil, fmt.Errorf("find: --newer %s is not before --older %s: nothing can match", opt.Newer.Format(time.DateTime), opt.Older.Format(time.DateTime))
	}
	sns, err := a.findSnapshots(ctx, opt.Snapshots, opt.Filter)
	if err != nil {
		return nil, err
	}
	f := &finder{r: a.r, pats: pats, pathKeyed: pats.PathDependent(), seed: maphash.MakeSeed(), newer: opt.Newer, older: opt.Older,
		memo: map[findKey]findMemo{}, limit: findMemoLimit}
	res := &FindResult{Errors: []string{}}
	for _, sn := range sns {
		root, err := f.dir(ctx, sn.Tree, "")
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		var errs []string
		if err != nil {
			errs = append(errs, fmt.Sprintf("/: %v", err))
		}
		err = root.collect("", func(m FindMatch) error {
			res.Matches++
			return fn(sn, m)
		}, &errs)
		if err != nil {
			return nil, err
		}
		res.Snapshots++
		for _, e := range errs {
			res.Errors = append(res.Errors, fmt.Sprintf("snapshot %s: %s", sn.ID.Short(), e))
		}
	}
	res.TreesRead, res.TreesReused = f.read, f.reused
	return res, nil
}

// findSnapshots returns the snapshots refs name (each must match f), or
// without refs every readable one f selects, oldest first.
func (a *Repo) findSnapshots(ctx context.Context, refs []string, f snapshot.Filter) ([]*snapshot.Snapshot, error) {
	if len(refs) == 0 {
		return a.matching(ctx, f, a.opt.Events)
	}
	var sns []*snapshot.Snapshot
	seen := map[blob.ID]bool{}
	for _, ref := range refs {
		sn, err := a.Snapshot(ctx, ref, f)
		if err != nil {
			return nil, fmt.Errorf("--snapshot %s: %w", ref, err)
		}
		if !seen[sn.ID] {
			seen[sn.ID] = true
			sns = append(sns, sn)
		}
	}
	slices.SortStableFunc(sns, func(x, y *snapshot.Snapshot) int { return x.Time.Compare(y.Time) })
	return sns, nil
}

// findMemoLimit bounds how many subtrees a search remembers: about 80
// bytes each (and their matches), so memory stays bounded on a tree of
// millions of directories, where forgetting the oldest costs re-reading.
const findMemoLimit = 1 << 20

// finder searches trees, remembering what it found below each.
type finder struct {
	r            *repo.Repository
	pats         pattern.List
	pathKeyed    bool
	seed         maphash.Seed
	newer, older time.Time
	read, reused int
	// memo and old are two generations of remembered subtrees: when memo
	// holds limit/2, it becomes old and the oldest are forgotten, a
	// least-recently-used cache at the cost of a second map.
	memo, old map[findKey]findMemo
	limit     int
}

// findKey names a searched subtree. What matches below a tree depends on
// its contents alone when every pattern is a name pattern; otherwise on
// where it is too, which a 64-bit hash of the path stands for (the tree
// ID must match as well, so a collision needs one tree at two places
// whose paths' hashes collide).
type findKey struct {
	tree blob.ID
	path uint64
}

// recall returns what is remembered of key, keeping it in the newer
// generation.
func (f *finder) recall(key findKey) (findMemo, bool) {
	if m, ok := f.memo[key]; ok {
		return m, true
	}
	m, ok := f.old[key]
	if ok {
		f.remember(key, m)
	}
	return m, ok
}

func (f *finder) remember(key findKey, m findMemo) {
	if len(f.memo) >= f.limit/2 {
		f.old, f.memo = f.memo, make(map[findKey]findMemo, len(f.memo))
	}
	f.memo[key] = m
}

// findMemo is what a subtree holds: its matches (nil: none), or the error
// of reading it.
type findMemo struct {
	dir *findDir
	err error
}

// findDir holds the entries of one directory that match, have matches
// below them or could not be read, in name order: a compact copy of the
// part of the tree that matters, which is all a later snapshot sharing
// it needs, unreadable directories included, so that every snapshot
// holding one names it.
type findDir struct {
	items []findItem
}

type findItem struct {
	name  string
	match *FindMatch // the entry itself matches (Path unset)
	sub   *findDir   // entries below it match
	err   error      // its listing could not be read
}

// dir searches the tree id at path ("" for a snapshot's root, else
// "/a/b"); the error is that of reading the tree itself.
func (f *finder) dir(ctx context.Context, id blob.ID, path string) (*findDir, error) {
	key := findKey{tree: id}
	if f.pathKeyed {
		key.path = maphash.String(f.seed, path)
	}
	if m, ok := f.recall(key); ok {
		f.reused++
		return m.dir, m.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := snapshot.LoadTree(ctx, f.r, id)
	if err != nil {
		if ctx.Err() == nil {
			f.remember(key, findMemo{err: err})
		}
		return nil, err
	}
	f.read++
	var d findDir
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path + "/" + n.Name
		it := findItem{name: n.Name}
		if f.pats.Match(p) && f.inTime(n) {
			it.match = &FindMatch{Type: n.Type, Mode: n.Mode, UID: n.UID, GID: n.GID, Size: n.Size,
				MTime: time.Unix(0, n.MTime).UTC(), Target: n.Target}
		}
		if n.Type == snapshot.Dir && f.pats.ChildMayMatch(p) {
			it.sub, it.err = f.dir(ctx, n.Subtree, p)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if it.match != nil || it.sub != nil || it.err != nil {
			d.items = append(d.items, it)
		}
	}
	var found *findDir
	if len(d.items) > 0 {
		found = &d
	}
	f.remember(key, findMemo{dir: found})
	return found, nil
}

// inTime reports whether n's mtime lies within the bounds.
func (f *finder) inTime(n *snapshot.Node) bool {
	t := time.Unix(0, n.MTime)
	return (f.newer.IsZero() || t.After(f.newer)) && (f.older.IsZero() || t.Before(f.older))
}

// collect sends the matches below d, at path, to emit in walk order, and
// appends the directories that could not be read to errs.
func (d *findDir) collect(path string, emit func(FindMatch) error, errs *[]string) error {
	if d == nil {
		return nil
	}
	for i := range d.items {
		it := &d.items[i]
		p := path + "/" + it.name
		if it.match != nil {
			m := *it.match
			m.Path = p
			if !utf8.ValidString(p) {
				m.PathBytes = []byte(p)
			}
			if err := emit(m); err != nil {
				return err
			}
		}
		if it.err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: %v", p, it.err))
		}
		if err := it.sub.collect(p, emit, errs); err != nil {
			return err
		}
	}
	return nil
}
