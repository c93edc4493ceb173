package plan

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// Hard links in a journal scan. A change to a file concerns every name it
// has: its content, metadata and link count are the inode's, and each of
// its nodes in the snapshot records whether it is hard-linked and the path
// of the first of its names in depth-first order. So when the journal
// reports a hard-linked inode as changed (by number: fanotify reports the
// inode of every change, and the watchers add the number wherever they
// know it), the scan lists every directory that holds one of its names:
//
//   - the directories in which the set's last scans met it as a
//     multiply-linked file (the state database's link records, kept per
//     listed directory);
//   - a file the records do not hold had one name when it was last
//     scanned, or was not in the set: that name is found in the stat
//     cache, which records every entry's inode (when it is known to
//     describe every entry of the parent snapshot, a file it does not
//     have was not in it);
//   - names made since, or moved in with their directory, are in
//     directories the journal reports anyway.
//
// The archive then builds the nodes of those inodes as a full scan does
// (archive.Options.Links). What the delta does not name (a directory moved
// or removed with hard-linked files in it, a changed file found in a listed
// directory) the archive finds as it walks and asks for, and the backup
// scans again with those added (CoverLinks). Only a file whose names
// cannot be placed is left to a full scan: neither its path nor its number
// is known, the stat cache does not say which inode a removed name held,
// or, with a stat cache not known to be complete, a file no record held
// turns out to have more links than the scan met.

// linkRules adds to d the directories holding the names of the hard-linked
// inodes the delta reports, and the inodes to Links. It returns a reason
// to scan fully when the names of a changed file cannot be known.
func (d *Decision) linkRules(ctx context.Context, delta changes.Delta) (reason string, err error) {
	// want: inodes to place; true when, without a record, the stat cache
	// must be searched for the one name it had when last scanned, false
	// when a record alone tells. Only a link made (known by the new name,
	// or as made outside), a change through a name inside, or a mapped
	// file with no verified name can concern a file that had one name: a
	// change by number alone (through a name outside the roots, or seen
	// by an inotify watch on a multiply-linked file) concerns a file that
	// was hard-linked when last scanned, or whose link made since is in
	// the delta too. A removed name held another name only if it was
	// hard-linked then. So the stat cache, whose search reads every row
	// of the set, is searched only when a link was added, not whenever a
	// hard-linked file elsewhere on the filesystem changes.
	want := map[state.DevIno]bool{}
	for _, in := range delta.Inodes {
		switch {
		case in.Ino != 0:
			if in.Path != "" {
				d.Dirs = append(d.Dirs, filepath.Dir(in.Path))
			}
			di := state.DevIno{Dev: in.Dev, Ino: in.Ino}
			want[di] = want[di] || in.Path != "" || in.LinkAdded || in.Mapped
		case in.Path != "":
			d.Dirs = append(d.Dirs, filepath.Dir(in.Path))
			di, ok, err := d.inodeAt(in.Path)
			if err != nil {
				return "", err
			}
			if _, had := want[di]; ok && !had {
				want[di] = false
			}
		default:
			return "a hard-linked file changed and neither its path nor its inode is known", nil
		}
	}
	if err := d.cover(ctx, want); err != nil {
		return "", err
	}
	return "", nil
}

// CoverLinks adds to a journal scan the directories holding the names of
// inodes, which the scan met changed (archive.NeedLinksError), for the
// scan to run again. It fails if the decision is no journal scan.
func (d Decision) CoverLinks(ctx context.Context, inodes []state.DevIno) (Decision, error) {
	if !d.Incremental() {
		return d, errors.New("hard links: not a journal scan")
	}
	want := map[state.DevIno]bool{}
	for _, in := range inodes {
		want[in] = true
	}
	d.Dirs = append([]string(nil), d.Dirs...)
	links := make(map[state.DevIno]bool, len(d.Links)+len(inodes))
	for k, v := range d.Links {
		links[k] = v
	}
	d.Links = links
	if err := d.cover(ctx, want); err != nil {
		return d, err
	}
	if d.Mode == snapshot.ModeJournal {
		d.describe()
	}
	return d, nil
}

// cover places the inodes of want (see linkRules) not yet in d.Links.
func (d *Decision) cover(ctx context.Context, want map[state.DevIno]bool) error {
	if d.Links == nil {
		d.Links = map[state.DevIno]bool{}
	}
	var ask []state.DevIno
	for in := range want {
		if _, done := d.Links[in]; !done {
			ask = append(ask, in)
		}
	}
	d.Dirs = sortedUnique(d.Dirs)
	before := len(d.Dirs)
	defer func() {
		d.Dirs = sortedUnique(d.Dirs)
		d.LinkDirs += len(d.Dirs) - before
	}()
	if len(ask) == 0 || d.req.Local == nil {
		// Without a state database there is no stat cache either: the
		// backup reads everything, journal or not.
		return nil
	}
	recs, err := d.req.Local.LinkDirs(ctx, d.req.Set, ask)
	if err != nil {
		return fmt.Errorf("read hard-link records: %w", err)
	}
	search := map[state.DevIno]bool{}
	for _, in := range ask {
		switch {
		case len(recs[in]) > 0:
			d.Links[in] = true
			d.Dirs = append(d.Dirs, recs[in]...)
		case want[in]:
			search[in] = true
		}
	}
	if len(search) == 0 {
		return nil
	}
	found, err := d.findNames(ctx, search)
	if err != nil {
		return err
	}
	for in := range search {
		// Found: the one name it had when last scanned. Not found: it was
		// not in the set then, so all its names inside are new, in
		// directories the journal reports. That holds when the stat cache
		// describes every entry of the parent snapshot; else the archive
		// checks that it meets as many names as the file has links.
		d.Links[in] = len(found[in]) > 0 || d.StatsComplete
		d.Dirs = append(d.Dirs, found[in]...)
	}
	return nil
}

// inodeAt returns the inode the stat cache recorded at path (a name that
// was removed, or changed known by its path alone).
func (d *Decision) inodeAt(path string) (state.DevIno, bool, error) {
	if d.req.Local == nil {
		return state.DevIno{}, false, nil
	}
	_, raw, ok, err := d.req.Local.DirStats(d.req.Set, filepath.Dir(path))
	if err != nil || !ok {
		return state.DevIno{}, false, err
	}
	recs, err := scan.DecodeStatRecords(raw)
	if err != nil {
		return state.DevIno{}, false, nil // a damaged row is no row; the archive finds out
	}
	r := scan.FindStatRecord(recs, filepath.Base(path))
	if r == nil || r.Ino == 0 {
		return state.DevIno{}, false, nil
	}
	return state.DevIno{Dev: r.Dev, Ino: r.Ino}, true, nil
}

// findNames searches the set's stat cache for the inodes of want and
// returns the directories that held them. It reads every row of the set:
// it runs only when a file that no hard-link record holds gained a link
// or changed by number, and costs less than the full scan it spares.
func (d *Decision) findNames(ctx context.Context, want map[state.DevIno]bool) (map[state.DevIno][]string, error) {
	out := map[state.DevIno][]string{}
	err := d.req.Local.StatRows(ctx, d.req.Set, func(dir string, raw []byte) error {
		recs, err := scan.DecodeStatRecords(raw)
		if err != nil {
			return nil // a damaged row: the archive's count of names is the check
		}
		for _, r := range recs {
			if in := (state.DevIno{Dev: r.Dev, Ino: r.Ino}); want[in] {
				out[in] = append(out[in], dir)
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("search the stat cache for hard-linked files: %w", err)
	}
	return out, nil
}

func sortedUnique(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}
