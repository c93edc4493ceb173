// Package backup runs one backup end to end: plan (full scan or
// parent-assisted, and why), scan and archive, commit (flush packs and
// index, save the snapshot record), then record history and the stat cache
// in the local state database — never before the snapshot is durable.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/changes"
	planpkg "github.com/tidemark/tidemark/internal/plan"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// Version is recorded in every snapshot.
const Version = "tidemark 0.1.0"

// Options configure a backup.
type Options struct {
	Paths         []string
	Excludes      []string
	OneFileSystem bool
	// ReadAll reads every file even when the parent says it is unchanged.
	ReadAll  bool
	Tags     []string
	Host     string
	Progress *archive.Progress
	// Scan is "auto" (default), "full" or "journal" (fail rather than scan
	// fully).
	Scan string
	// Policy forces full scans now and then.
	Policy planpkg.Policy
	// Journal is the change journal, nil if none is configured.
	Journal Journal
	// Changed, when not nil, is an externally produced list of changed
	// paths (--changed-from): a scan of their directories is trusted for
	// everything else.
	Changed []string
	// ChangedSource names where Changed came from, for the record.
	ChangedSource string
	// RacyWindow is passed to the archiver (tests shorten it).
	RacyWindow time.Duration
	// Started is called once the plan is made, before scanning.
	Started func(plan Plan)
}

// Plan is the decision made before scanning.
type Plan struct {
	Roots  []string
	Parent *snapshot.Snapshot
	Mode   string
	Reason string
}

// Result is a finished backup.
type Result struct {
	Snapshot *snapshot.Snapshot
	Parent   *snapshot.Snapshot
	Errors   []archive.FileError
}

// NormalizeRoots prepares the paths of a backup as the watcher does
// (changes.NormalizeRoots: absolute, clean, symlinks in parent directories
// resolved, the last component kept, nested and duplicate paths dropped,
// sorted), and requires each to exist.
func NormalizeRoots(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	roots, err := changes.NormalizeRoots(paths)
	if err != nil {
		return nil, err
	}
	for _, r := range roots {
		if _, err := os.Lstat(r); err != nil {
			return nil, fmt.Errorf("path %s: %w", r, err)
		}
	}
	return roots, nil
}

// SettingsHash identifies everything that shapes a snapshot besides the
// files themselves, so a later change of settings can be detected.
func SettingsHash(roots, excludes []string, oneFS bool) string {
	ex := append([]string(nil), excludes...)
	sort.Strings(ex)
	buf, _ := json.Marshal(struct {
		Roots    []string
		Excludes []string
		OneFS    bool
	}{roots, ex, oneFS})
	sum := sha256.Sum256(buf)
	return fmt.Sprintf("%x", sum[:16])
}

// StatSet keys the stat cache rows of one backup set (host and roots).
func StatSet(host string, roots []string) []byte {
	sum := sha256.Sum256([]byte(host + "\x00" + strings.Join(roots, "\x00")))
	return sum[:16]
}

// Run performs a backup. st may be nil (no local state).
func Run(ctx context.Context, r *repo.Repository, st *state.DB, opt Options) (*Result, error) {
	start := time.Now()
	roots, err := NormalizeRoots(opt.Paths)
	if err != nil {
		return nil, err
	}
	ex, err := scan.NewExcluder(opt.Excludes)
	if err != nil {
		return nil, err
	}
	host := opt.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	lock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()

	set := StatSet(host, roots)
	parent, err := findParent(ctx, r, st, set, host, roots)
	if err != nil {
		return nil, fmt.Errorf("find parent snapshot: %w", err)
	}
	settings := SettingsHash(roots, opt.Excludes, opt.OneFileSystem)
	aopt := archive.Options{Roots: roots, Excludes: ex, OneFileSystem: opt.OneFileSystem, ReadAll: opt.ReadAll, Progress: opt.Progress, RacyWindow: opt.RacyWindow}
	bplan, err := decide(ctx, st, set, settings, roots, parent, opt, start)
	if err != nil {
		return nil, err
	}
	if parent != nil {
		aopt.ParentTree = parent.Tree
	}
	if bplan.Mode != snapshot.ModeFull {
		aopt.Stats, aopt.StatSet = st, set
		aopt.Changed, aopt.ChangedTrees = bplan.changed, bplan.trees
	}
	plan := bplan.Plan
	if opt.Started != nil {
		opt.Started(plan)
	}

	packedBefore, plainBefore := r.AddedBytes()
	res, err := archive.Run(ctx, r, aopt)
	var full *archive.NeedFullScanError
	if errors.As(err, &full) {
		if _, err := planpkg.FullScan(opt.Scan, full.Reason); err != nil {
			return nil, err
		}
		// Safety first: scan everything, and say why.
		plan.Mode = snapshot.ModeParentAssisted
		plan.Reason = "full scan: " + full.Reason
		aopt.Changed, aopt.ChangedTrees = nil, nil
		res, err = archive.Run(ctx, r, aopt)
	}
	if err != nil {
		return nil, err
	}
	if plan.Mode == snapshot.ModeJournal || plan.Mode == snapshot.ModeExternal {
		// Files in untouched subtrees were not visited, but they are
		// unchanged all the same.
		res.Summary.FilesUnchanged = res.Totals.Files - res.Summary.FilesNew - res.Summary.FilesChanged
	}
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store packs: %w", err)
	}
	packed, plain := r.AddedBytes()
	username := ""
	if u, err := user.Current(); err == nil {
		username = u.Username
	}
	sn := &snapshot.Snapshot{
		Time: start.UTC(), Host: host, Username: username, Roots: roots, Tree: res.Tree, Tags: opt.Tags,
		Excludes: opt.Excludes, Settings: settings,
		Scan: snapshot.ScanInfo{Mode: plan.Mode, Reason: plan.Reason, Cursor: bplan.cursor}, Totals: res.Totals, Summary: res.Summary, Program: Version,
	}
	if plan.Mode == snapshot.ModeJournal || plan.Mode == snapshot.ModeExternal {
		sn.Scan.JournalSinceFull, sn.Scan.LastFull = parent.Scan.JournalSinceFull+1, parent.Scan.LastFull
	} else {
		sn.Scan.LastFull = start.UTC()
	}
	if parent != nil {
		pid := parent.ID
		sn.Parent = &pid
	}
	sn.Summary.BytesAdded, sn.Summary.BytesAddedRaw = uint64(packed-packedBefore), uint64(plain-plainBefore)
	sn.Summary.Duration = time.Since(start)
	// A prune may delete unused data once this client's lock looks stale;
	// a snapshot referencing such data must not be written.
	if err := lock.Check(); err != nil {
		return nil, fmt.Errorf("backup of %s: %w", strings.Join(roots, ", "), err)
	}
	if err := snapshot.Save(ctx, r, sn); err != nil {
		return nil, err
	}
	// Only now is the snapshot durable; the stat cache may describe it.
	if st != nil {
		if err := st.PutDirStats(ctx, set, res.StatUpdates); err != nil {
			return nil, err
		}
		if err := st.PutLinks(ctx, set, res.LinksFull, res.Links); err != nil {
			return nil, err
		}
		settingsJSON, err := json.Marshal(SetSettings{Host: host, Paths: roots, Excludes: opt.Excludes, OneFileSystem: opt.OneFileSystem, Policy: opt.Policy})
		if err != nil {
			return nil, err
		}
		if err := st.SaveSettings(ctx, set, settingsJSON, sn.ID.String()); err != nil {
			return nil, err
		}
		if err := st.RecordBackup(ctx, state.Backup{Snapshot: sn.ID.String(), Time: sn.Time, Host: host, Roots: roots,
			Mode: plan.Mode, Reason: plan.Reason, FilesNew: res.Summary.FilesNew, FilesChanged: res.Summary.FilesChanged,
			FilesUnchanged: res.Summary.FilesUnchanged, BytesRead: res.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
			TotalBytes: res.Totals.Bytes, TotalFiles: res.Totals.Files, Errors: res.Summary.Errors, Duration: sn.Summary.Duration}); err != nil {
			return nil, err
		}
	}
	if bplan.cursor != nil && opt.Journal != nil {
		// Records up to this cursor are no longer needed by this set.
		if err := opt.Journal.Release(fmt.Sprintf("%x", set), bplan.cursor); err != nil {
			return nil, fmt.Errorf("release journal records: %w", err)
		}
	}
	return &Result{Snapshot: sn, Parent: parent, Errors: res.Errors}, nil
}

// SetSettings are the stored settings of a backup set.
type SetSettings struct {
	Host          string         `json:"host"`
	Paths         []string       `json:"paths"`
	Excludes      []string       `json:"excludes,omitempty"`
	OneFileSystem bool           `json:"one_file_system,omitempty"`
	Policy        planpkg.Policy `json:"full_scan_policy"`
}

// Journal is what a backup needs of a change journal. Cursors are opaque.
type Journal interface {
	// Fence proves that every change made so far is recorded and returns
	// the position after them.
	Fence(ctx context.Context, roots []string) (json.RawMessage, error)
	// Since returns what may have changed between two cursors, or an
	// error (a gap) when the record is not provably complete; the error's
	// text is the reason.
	Since(ctx context.Context, from, to json.RawMessage, roots []string) (Delta, error)
	// Release says the backup set no longer needs records up to c.
	Release(set string, c json.RawMessage) error
}

// Delta is a change journal's answer.
type Delta struct {
	// Dirs must be listed again; Trees scanned whole.
	Dirs, Trees []string
	// Inodes changed whose paths are unknown; they matter only if the
	// previous backup held them as hard-linked files.
	Inodes []state.DevIno
	// Links are hard-linked files that changed, by the path and inode
	// seen then. Listing the path's directory meets the file (and the
	// scan declines); a path that no longer holds that inode means the
	// link is gone and its other links cannot be found without a full
	// scan.
	Links []Link
	// FullScan, when set, says why the delta cannot be used after all.
	FullScan string
}

// Link is a path of a hard-linked file and the inode it held.
type Link struct {
	Path string
	state.DevIno
}

// decision is the plan plus what the scan needs to carry it out.
type decision struct {
	Plan
	changed, trees []string
	cursor         json.RawMessage
}

// decide picks the scan mode and its reason. Every rule is in plan.Decide
// or here, in this order: forced and impossible cases, then the fence,
// then the journal's answer.
func decide(ctx context.Context, st *state.DB, set []byte, settings string, roots []string, parent *snapshot.Snapshot, opt Options, now time.Time) (decision, error) {
	d := decision{Plan: Plan{Roots: roots, Parent: parent}}
	if err := opt.Policy.Validate(); err != nil {
		return d, err
	}
	hasStats := false
	noStats := "the local stat cache has no records for these paths (new machine or deleted cache): every file is read"
	if st != nil && parent != nil {
		var err error
		if hasStats, err = st.HasDirStats(set); err != nil {
			return d, err
		}
		if !hasStats {
			rebuilt, err := st.Rebuilt(ctx)
			if err != nil {
				return d, err
			}
			if !rebuilt.IsZero() {
				noStats = fmt.Sprintf("the local cache was rebuilt from the repository (tidemark cache rebuild, %s) and has no stat records for these paths: every file is read",
					rebuilt.Local().Format("2006-01-02 15:04"))
			}
		}
	}
	// The full-scan fallbacks: read everything, or walk everything and
	// skip files whose metadata matches the parent.
	fullScan := func(reason string) decision {
		switch {
		case parent == nil:
			d.Mode = snapshot.ModeFull
		case opt.ReadAll:
			d.Mode, reason = snapshot.ModeFull, "--read-all: every file is read"
		case st == nil:
			d.Mode, reason = snapshot.ModeFull, "no local state database: every file is read"
		case !hasStats:
			d.Mode, reason = snapshot.ModeFull, noStats
		default:
			d.Mode = snapshot.ModeParentAssisted
			reason += fmt.Sprintf("; files whose size, mtime, ctime, inode and device match parent snapshot %s are not read", parent.ID.Short())
		}
		d.Reason = reason
		return d
	}
	if opt.Changed != nil {
		if parent == nil || !hasStats || opt.ReadAll {
			return fullScan("no parent snapshot to merge --changed-from into"), nil
		}
		d.Mode, d.changed = snapshot.ModeExternal, changedDirs(opt.Changed)
		d.Reason = fmt.Sprintf("changed paths from %s (%d entries); everything else is taken from parent snapshot %s unchecked", opt.ChangedSource, len(opt.Changed), parent.ID.Short())
		return d, nil
	}
	// Take the cursor first, whatever this backup then does: the next
	// backup needs it to use the journal.
	var gap string
	if opt.Journal == nil {
		gap = "no change journal: start `tidemark watch` for these paths"
	} else {
		c, err := opt.Journal.Fence(ctx, roots)
		if err != nil {
			if ctx.Err() != nil {
				return d, ctx.Err()
			}
			gap = err.Error()
		} else {
			d.cursor = c
		}
	}
	in := planpkg.Input{Scan: opt.Scan, Settings: settings, HasStatCache: hasStats && !opt.ReadAll, Policy: opt.Policy, Now: now}
	if parent != nil {
		in.Parent = &planpkg.Parent{Cursor: string(parent.Scan.Cursor), Settings: parent.Settings,
			JournalSinceFull: parent.Scan.JournalSinceFull, LastFull: parent.Scan.LastFull}
	}
	pd, err := planpkg.Decide(in)
	if err != nil {
		return d, err
	}
	if !pd.TryJournal {
		return fullScan(pd.Reason), nil
	}
	fail := func(reason string) (decision, error) {
		pd, err := planpkg.FullScan(opt.Scan, reason)
		if err != nil {
			return d, err
		}
		return fullScan(pd.Reason), nil
	}
	if d.cursor == nil {
		return fail(gap)
	}
	delta, err := opt.Journal.Since(ctx, parent.Scan.Cursor, d.cursor, roots)
	if err != nil {
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		return fail(err.Error())
	}
	if delta.FullScan != "" {
		return fail(delta.FullScan)
	}
	for _, l := range delta.Links {
		var st unix.Stat_t
		if err := unix.Lstat(l.Path, &st); err != nil || st.Dev != l.Dev || st.Ino != l.Ino {
			return fail(fmt.Sprintf("a hard-linked file changed and its link %s is gone", l.Path))
		}
	}
	for _, in := range delta.Inodes {
		has := true // without records, assume the worst
		if st != nil {
			if has, err = st.HasLink(ctx, set, in); err != nil {
				return d, err
			}
		}
		if has {
			return fail(fmt.Sprintf("a hard-linked file of this backup (inode %d) changed through a path outside it", in.Ino))
		}
	}
	d.Mode, d.changed, d.trees = snapshot.ModeJournal, delta.Dirs, delta.Trees
	if d.changed == nil {
		d.changed = []string{}
	}
	d.Reason = fmt.Sprintf("change journal: %d directories changed, %d new subtrees since parent snapshot %s", len(delta.Dirs), len(delta.Trees), parent.ID.Short())
	return d, nil
}

// changedDirs turns changed paths into the directories to list again: the
// parent of each (its entry changed) and the path itself (in case it is a
// directory whose entries changed).
func changedDirs(paths []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		p = filepath.Clean(p)
		add(p)
		add(filepath.Dir(p))
	}
	sort.Strings(out)
	return out
}

// ReadChangedList reads --changed-from: absolute paths, one per line.
func ReadChangedList(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--changed-from: %w", err)
	}
	out := []string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if !filepath.IsAbs(line) {
			return nil, fmt.Errorf("--changed-from %s line %d: %q is not an absolute path", name, i+1, line)
		}
		out = append(out, line)
	}
	return out, nil
}

// findParent returns the newest snapshot of the set. The state database
// remembers it, which spares listing and reading every snapshot record; an
// older parent than the newest (made through another cache) is still a
// correct parent, just a less useful one.
func findParent(ctx context.Context, r *repo.Repository, st *state.DB, set []byte, host string, roots []string) (*snapshot.Snapshot, error) {
	if st != nil {
		last, err := st.LastSnapshot(ctx, set)
		if err != nil {
			return nil, err
		}
		if id, err := blob.ParseID(last); err == nil {
			// Ask the repository itself: a cached copy outlives a snapshot
			// that was forgotten, whose trees may be gone.
			if _, err := r.Raw().Stat(ctx, backend.Handle{Type: backend.Snapshot, Name: last}); err != nil {
				return snapshot.LatestFor(ctx, r, host, roots)
			}
			sn, err := snapshot.Load(ctx, r, id)
			if err == nil && sn.Host == host && strings.Join(sn.Roots, "\x00") == strings.Join(roots, "\x00") {
				return sn, nil
			}
			// Gone (forgotten) or unreadable: look for another.
		}
	}
	return snapshot.LatestFor(ctx, r, host, roots)
}
