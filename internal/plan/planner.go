package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// Local is what the decision needs of the local state database.
type Local interface {
	// HasDirStats reports whether the stat cache holds rows of the set.
	HasDirStats(set []byte) (bool, error)
	// Rebuilt is when `cache rebuild` recreated the cache (zero: never).
	Rebuilt(ctx context.Context) (time.Time, error)
	// LinkDirs returns, per inode the set's records hold, the directories
	// in which its scans met it as a multiply-linked file.
	LinkDirs(ctx context.Context, set []byte, inodes []state.DevIno) (map[state.DevIno][]string, error)
	// DirStats returns the stat cache row of one directory (entries as
	// scan.EncodeStatRecords writes them).
	DirStats(set []byte, path string) (blob.ID, []byte, bool, error)
	// StatRows calls fn with every stat cache row of the set.
	StatRows(ctx context.Context, set []byte, fn func(dir string, entries []byte) error) error
	// StatsComplete returns the snapshot whose every entry the set's
	// stat cache rows describe ("" if none is known).
	StatsComplete(ctx context.Context, set []byte) (string, error)
}

// Request is everything a backup's scan decision depends on.
type Request struct {
	// Scan is what the user asked for: ScanAuto (or ""), ScanFull,
	// ScanJournal.
	Scan  string
	Roots []string
	// Set keys the backup set's rows in the local state.
	Set []byte
	// Settings is this backup's settings hash.
	Settings string
	// Parent is the parent snapshot, nil for none.
	Parent *snapshot.Snapshot
	// ReadAll reads every file (--read-all).
	ReadAll bool
	Policy  Policy
	Now     time.Time
	// Source says what changed; nil when none is configured.
	Source changes.Source
	// Local is the state database; nil without one (--no-cache).
	Local Local
	// IndexShrunk is when the repository's local cache last found index
	// files removed (see repo.Repository.IndexShrunk); zero if never.
	IndexShrunk time.Time
	// IndexDamaged: damaged index files were skipped when the repository
	// was opened.
	IndexDamaged bool
}

// Decision is how a backup scans, and why.
type Decision struct {
	// Mode is one of the snapshot.Mode* values.
	Mode   string
	Reason string
	// Dirs are the directories to list again and Trees the directories to
	// scan whole, in the journal and external-list modes; Dirs is not nil
	// there, even when nothing changed.
	Dirs, Trees []string
	// Links are the hard-linked inodes the scan may rebuild, every
	// directory holding a name of one being in Dirs (see
	// archive.Options.Links); LinkDirs counts the directories added to
	// Dirs for them.
	Links    map[state.DevIno]bool
	LinkDirs int
	// StatsComplete: the stat cache describes every entry of the parent
	// snapshot (see state.DB.StatsComplete). The snapshot this scan makes
	// is then complete too, unless the archive reports holes; a full scan
	// makes one complete whatever the parent.
	StatsComplete bool
	// Cursor is the source's position to record with the snapshot (taken
	// after a fence, before scanning); zero for none.
	Cursor changes.Cursor
	// CheckStored: files taken from the parent must have every blob in the
	// index, else they are read again. Needed only when the index may have
	// lost entries the parent uses (removed or damaged index files): it
	// loses none otherwise, and the lookups cost a walk of a large tree
	// several percent.
	CheckStored bool

	req      Request
	hasStats bool
	noStats  string
}

// Incremental reports whether the scan lists only what the source reported.
func (d Decision) Incremental() bool {
	return d.Mode == snapshot.ModeJournal || d.Mode == snapshot.ModeExternal
}

// Make decides how a backup scans. Every rule is applied here or in
// Decide, in this order: the user's request and the cases that rule the
// source out (no parent, no cursor, changed settings, no stat cache, the
// forced-full-scan policy), then the fence, then the source's answer and
// what it implies for hard links. The fence comes first whatever happens
// next, so that even a full scan records a cursor for the next backup.
func Make(ctx context.Context, req Request) (Decision, error) {
	d := Decision{req: req}
	if err := req.Policy.Validate(); err != nil {
		return d, err
	}
	d.noStats = "the local stat cache has no records for these paths (new machine or deleted cache): every file is read"
	if req.Local != nil && req.Parent != nil {
		var err error
		if d.hasStats, err = req.Local.HasDirStats(req.Set); err != nil {
			return d, fmt.Errorf("read the stat cache: %w", err)
		}
		if !d.hasStats {
			rebuilt, err := req.Local.Rebuilt(ctx)
			if err != nil {
				return d, fmt.Errorf("read the state database: %w", err)
			}
			if !rebuilt.IsZero() {
				d.noStats = fmt.Sprintf("the local cache was rebuilt from the repository (tidemark cache rebuild, %s) and has no stat records for these paths: every file is read",
					rebuilt.Local().Format("2006-01-02 15:04"))
			}
		}
	}

	gap := "no change journal: start `tidemark watch` for these paths"
	fenced := false
	if req.Source != nil {
		c, err := req.Source.Fence(ctx, req.Roots)
		switch {
		case err == nil:
			d.Cursor, fenced = c, true
		case ctx.Err() != nil:
			return d, ctx.Err()
		default:
			gap = err.Error()
		}
	}

	in := Input{Scan: req.Scan, Settings: req.Settings, HasStatCache: d.hasStats && !req.ReadAll, Policy: req.Policy, Now: req.Now,
		Vouched: req.Source != nil && req.Source.Kind() == changes.KindExternal, IndexShrunk: req.IndexShrunk, IndexDamaged: req.IndexDamaged}
	if p := req.Parent; p != nil {
		in.Parent = &Parent{Cursor: string(p.Scan.Cursor), Settings: p.Settings, JournalSinceFull: p.Scan.JournalSinceFull,
			LastFull: p.Scan.LastFull, Time: p.Time}
	}
	d.CheckStored = in.IndexShrunkSinceParent() || in.IndexDamaged
	pd, err := Decide(in)
	if err != nil {
		return d, err
	}
	if !pd.TryJournal {
		return d.fullScan(pd.Reason), nil
	}
	if !fenced {
		return d.Decline(gap)
	}
	var from changes.Cursor
	if len(req.Parent.Scan.Cursor) > 0 {
		if err := json.Unmarshal(req.Parent.Scan.Cursor, &from); err != nil {
			return d.Decline(fmt.Sprintf("the parent snapshot's cursor is unreadable: %v", err))
		}
	}
	delta, err := req.Source.Since(ctx, from, d.Cursor, req.Roots)
	if err != nil {
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		if !errors.Is(err, changes.ErrGap) {
			err = fmt.Errorf("%s error: %w", req.Source.Describe(), err)
		}
		return d.Decline(err.Error())
	}
	d.Dirs, d.Trees = append([]string{}, delta.Dirs...), delta.Trees
	if req.Local != nil {
		complete, err := req.Local.StatsComplete(ctx, req.Set)
		if err != nil {
			return d, fmt.Errorf("read the state database: %w", err)
		}
		d.StatsComplete = complete == req.Parent.ID.String()
	}
	reason, err := d.linkRules(ctx, delta)
	if err != nil {
		return d, err
	}
	if reason != "" {
		return d.Decline(reason)
	}
	if in.Vouched {
		d.Mode = snapshot.ModeExternal
	} else {
		d.Mode = snapshot.ModeJournal
	}
	d.describe()
	return d, nil
}

// describe sets the reason of a journal or external-list scan.
func (d *Decision) describe() {
	short := d.req.Parent.ID.Short()
	if d.Mode == snapshot.ModeExternal {
		d.Reason = fmt.Sprintf("%s; everything else is taken from parent snapshot %s unchecked", d.req.Source.Describe(), short)
		return
	}
	links := ""
	if d.LinkDirs > 0 {
		links = fmt.Sprintf(" (%d of them for other names of hard-linked files)", d.LinkDirs)
	}
	d.Reason = fmt.Sprintf("%s: %d directories changed%s, %d new subtrees since parent snapshot %s", d.req.Source.Describe(), len(d.Dirs), links, len(d.Trees), short)
}

// Decline gives up on the source for reason (a gap, or a journal scan that
// met something it cannot handle with the directories it was given) and
// returns the full-scan decision, keeping the cursor taken; with --scan
// journal it returns the error saying why the journal cannot be used.
func (d Decision) Decline(reason string) (Decision, error) {
	if _, err := FullScan(d.req.Scan, reason); err != nil {
		return d, err
	}
	return d.fullScan(reason), nil
}

// fullScan turns d into a full scan for reason: every file is read when
// nothing can vouch for their metadata, else the whole tree is walked and
// files whose metadata matches the parent are not read.
func (d Decision) fullScan(reason string) Decision {
	d.Dirs, d.Trees, d.Links, d.LinkDirs = nil, nil, nil, 0
	switch {
	case d.req.Parent == nil:
		d.Mode = snapshot.ModeFull
	case d.req.ReadAll:
		d.Mode, reason = snapshot.ModeFull, "--read-all: every file is read"
	case d.req.Local == nil:
		d.Mode, reason = snapshot.ModeFull, "no local state database: every file is read"
	case !d.hasStats:
		d.Mode, reason = snapshot.ModeFull, d.noStats
	default:
		d.Mode = snapshot.ModeParentAssisted
		reason += fmt.Sprintf("; files whose size, mtime, ctime, inode and device match parent snapshot %s are not read", d.req.Parent.ID.Short())
	}
	d.Reason = reason
	return d
}
