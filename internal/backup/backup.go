// Package backup runs one backup end to end: plan (full scan or
// parent-assisted, and why), scan and archive, commit (flush packs and
// index, save the snapshot record), then record history and the stat cache
// in the local state database — never before the snapshot is durable (the
// stat cache rows are staged aside while directories finish, so that their
// number does not weigh on memory, and take effect only then).
package backup

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"sync/atomic"
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
	"github.com/tidemark/tidemark/internal/version"
)

// Version is recorded in every snapshot (package version holds it).
const Version = version.Program

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
	// Source says what changed since the parent snapshot: the watcher's
	// journal or an external list (--changed-from); nil for none. The
	// planner decides whether it can be trusted.
	Source changes.Source
	// RacyWindow is passed to the archiver (tests shorten it).
	RacyWindow time.Duration
	// Started is called once the plan is made, before scanning, and again
	// if a journal scan declines and the backup starts over with a full
	// scan (Progress is then reset).
	Started func(plan Plan)
}

// Plan is the decision made before scanning.
type Plan struct {
	Roots  []string
	Parent *snapshot.Snapshot
	Mode   string
	Reason string
	// Declined, when set, says why an earlier journal scan of this backup
	// gave up; this plan replaces it.
	Declined string
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

// Run performs a backup. st may be nil (no local state). An error after
// the snapshot was saved is a *CommittedError; any other error means no
// snapshot was written.
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
	req := planpkg.Request{Scan: opt.Scan, Roots: roots, Set: set, Settings: settings, Parent: parent, ReadAll: opt.ReadAll,
		Policy: opt.Policy, Now: start, Source: opt.Source}
	if st != nil {
		req.Local = st
	}
	if req.IndexShrunk, err = r.IndexShrunk(); err != nil {
		return nil, err
	}
	req.IndexDamaged = len(r.IndexErrors()) > 0
	dec, err := planpkg.Make(ctx, req)
	if err != nil {
		return nil, err
	}
	prog := opt.Progress
	if prog == nil {
		prog = &archive.Progress{}
	}
	aopt := archive.Options{Roots: roots, Excludes: ex, OneFileSystem: opt.OneFileSystem, ReadAll: opt.ReadAll, Progress: prog,
		RacyWindow: opt.RacyWindow, CheckStored: dec.CheckStored}
	if parent != nil {
		aopt.ParentTree = parent.Tree
	}
	started := func(declined string) {
		if opt.Started != nil {
			opt.Started(Plan{Roots: roots, Parent: parent, Mode: dec.Mode, Reason: dec.Reason, Declined: declined})
		}
	}
	if dec.Mode != snapshot.ModeFull {
		// A parent-assisted or incremental scan: st holds stat records.
		aopt.Stats, aopt.StatSet = st, set
		aopt.Changed, aopt.ChangedTrees, aopt.Links = dec.Dirs, dec.Trees, dec.Links
	}
	started("")

	// The stat cache rows of this run are staged in the state database as
	// directories finish, and take effect once the snapshot is saved.
	var res *archive.Result
	commitStats := func() error { return nil }
	var run int64
	if st != nil {
		var b [8]byte
		if _, err := cryptorand.Read(b[:]); err != nil {
			return nil, err
		}
		run = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		staged := false
		defer func() {
			if !staged {
				// Failed before the snapshot: its rows describe nothing.
				_ = st.DropStagedDirStats(context.WithoutCancel(ctx), run)
			}
		}()
		aopt.StatSink = func(rows []state.DirStatsUpdate) error { return st.StageDirStats(ctx, run, set, rows) }
		commitStats = func() error {
			if err := st.StageDirStats(ctx, run, set, res.StatUpdates); err != nil {
				return err
			}
			staged = true
			return st.CommitDirStats(ctx, run)
		}
	}

	packedBefore, plainBefore := r.AddedBytes()
	res, err = archive.Run(ctx, r, aopt)
	// A journal scan that met changed hard-linked files whose other names
	// lie in directories it was not given runs again with those added;
	// each round adds at least one file, and a few rounds are plenty (each
	// new one comes from a directory moved or removed with hard-linked
	// files in it, or a file changed without an event naming it).
	for round := 1; ; round++ {
		var links *archive.NeedLinksError
		if !errors.As(err, &links) {
			break
		}
		if round > maxLinkRounds {
			err = &archive.NeedFullScanError{Reason: fmt.Sprintf("hard-linked files changed whose other names were still not all listed after %d rounds: %s",
				maxLinkRounds, strings.Join(links.Paths, ", "))}
			break
		}
		if dec, err = dec.CoverLinks(ctx, links.Inodes); err != nil {
			return nil, err
		}
		resetProgress(prog)
		if st != nil {
			if err := st.DropStagedDirStats(ctx, run); err != nil {
				return nil, err
			}
		}
		aopt.Changed, aopt.Links = dec.Dirs, dec.Links
		res, err = archive.Run(ctx, r, aopt)
	}
	var full *archive.NeedFullScanError
	if errors.As(err, &full) {
		// Safety first: scan everything, and say why. What the first
		// attempt stored is deduplicated, but its counters are not this
		// snapshot's.
		if dec, err = dec.Decline(full.Reason); err != nil {
			return nil, err
		}
		resetProgress(prog)
		if st != nil {
			if err := st.DropStagedDirStats(ctx, run); err != nil {
				return nil, err
			}
		}
		aopt.Changed, aopt.ChangedTrees, aopt.Links = nil, nil, nil
		started(full.Reason)
		res, err = archive.Run(ctx, r, aopt)
	}
	if err != nil {
		return nil, err
	}
	if dec.Incremental() {
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
		Scan: snapshot.ScanInfo{Mode: dec.Mode, Reason: dec.Reason}, Totals: res.Totals, Summary: res.Summary, Program: Version,
	}
	if !dec.Cursor.IsZero() {
		if sn.Scan.Cursor, err = json.Marshal(dec.Cursor); err != nil {
			return nil, fmt.Errorf("record the cursor: %w", err)
		}
	}
	if dec.Incremental() {
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
	result := &Result{Snapshot: sn, Parent: parent, Errors: res.Errors}
	// Only now is the snapshot durable; the local state may describe it.
	// From here on a failure leaves a complete snapshot: the error says so.
	committed := func(step, next string, err error) error {
		return &CommittedError{Result: result, Step: step, Next: next, Err: err}
	}
	if st != nil {
		// What the next backup of these paths does when the state database
		// keeps an earlier backup's stat records, or none.
		reread := "the next backup of these paths reads again what this one read"
		if has, err := st.HasDirStats(set); err == nil && !has {
			reread = "the next backup of these paths reads every file"
		}
		// Hard-link records before the stat cache: a stat cache without
		// the records of the same scan would let a journal backup miss a
		// change made through another link. The records alone make later
		// backups only more cautious.
		if err := st.PutLinks(ctx, set, res.LinksFull, res.Links); err != nil {
			return nil, committed(StepLinks, reread, err)
		}
		if err := commitStats(); err != nil {
			return nil, committed(StepStatCache, reread, err)
		}
		// Whether the rows just committed describe every entry of this
		// snapshot: a journal backup then takes a file they lack for one
		// that is new (see plan.Decision.StatsComplete).
		complete := ""
		if !res.StatHoles && (!dec.Incremental() || dec.StatsComplete) {
			complete = sn.ID.String()
		}
		if err := st.SetStatsComplete(ctx, set, complete); err != nil {
			return nil, committed(StepStatCache, "a later journal backup may scan fully when a hard link is added", err)
		}
		settingsJSON, err := json.Marshal(SetSettings{Host: host, Paths: roots, Excludes: opt.Excludes, OneFileSystem: opt.OneFileSystem, Policy: opt.Policy})
		if err != nil {
			return nil, committed(StepSettings, "", err)
		}
		// Without the settings' record of this snapshot the next backup
		// may take the one before as its parent.
		if err := st.SaveSettings(ctx, set, settingsJSON, sn.ID.String()); err != nil {
			return nil, committed(StepSettings, "the next backup of these paths may read again what this one read, and `tidemark history` does not list this backup", err)
		}
		if err := st.RecordBackup(ctx, state.Backup{Snapshot: sn.ID.String(), Time: sn.Time, Host: host, Roots: roots,
			Mode: dec.Mode, Reason: dec.Reason, FilesNew: res.Summary.FilesNew, FilesChanged: res.Summary.FilesChanged,
			FilesUnchanged: res.Summary.FilesUnchanged, BytesRead: res.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
			TotalBytes: res.Totals.Bytes, TotalFiles: res.Totals.Files, Errors: res.Summary.Errors, Duration: sn.Summary.Duration}); err != nil {
			return nil, committed(StepHistory, "`tidemark history` does not list this backup", err)
		}
	}
	if !dec.Cursor.IsZero() {
		// Records up to this cursor are no longer needed by this set.
		if err := opt.Source.Release(fmt.Sprintf("%x", set), dec.Cursor); err != nil {
			return nil, committed(StepRelease, "the journal keeps records up to this backup until a later one releases them", err)
		}
	}
	return result, nil
}

// maxLinkRounds bounds how often a journal scan runs again for the other
// names of hard-linked files it met changed.
const maxLinkRounds = 4

// Steps of recording a saved snapshot locally, as CommittedError.Step
// names them.
const (
	StepLinks     = "write hard-link records"
	StepStatCache = "write stat cache"
	StepSettings  = "save backup-set settings"
	StepHistory   = "record backup history"
	StepRelease   = "release journal records"
)

// CommittedError is a failure after the snapshot was saved: the snapshot
// is complete in the repository, and what failed is recording it locally
// (the state database, or the change journal's release), which costs
// later backups time, never data. Run returns it instead of a result;
// Result holds the result all the same.
type CommittedError struct {
	// Result is the backup, as Run returns it when nothing fails.
	Result *Result
	// Step is what was being written: one of the Step constants.
	Step string
	// Database is the state database's path, for the message. Run is
	// given an open database and cannot name it: its caller may.
	Database string
	// Next says what the failure costs later backups ("" if nothing).
	Next string
	Err  error
}

func (e *CommittedError) Error() string {
	where, cause := "the change journal", e.Err // whose errors name its files
	if e.Step != StepRelease {
		where = "the local state database"
		if e.Database != "" {
			where += " " + e.Database
		}
		// The database's own wrapping repeats the step; its root cause
		// is what is news.
		for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(cause) {
			cause = u
		}
	}
	msg := fmt.Sprintf("snapshot %s saved, but recording it in %s failed: %s: %v", e.Result.Snapshot.ID.Short(), where, e.Step, cause)
	if e.Next != "" {
		msg += "; " + e.Next
	}
	return msg
}

func (e *CommittedError) Unwrap() error { return e.Err }

// resetProgress starts the counters afresh for a second attempt.
func resetProgress(p *archive.Progress) {
	for _, c := range []*atomic.Uint64{&p.Files, &p.Dirs, &p.Bytes, &p.BytesRead, &p.Errors} {
		c.Store(0)
	}
}

// SetSettings are the stored settings of a backup set.
type SetSettings struct {
	Host          string         `json:"host"`
	Paths         []string       `json:"paths"`
	Excludes      []string       `json:"excludes,omitempty"`
	OneFileSystem bool           `json:"one_file_system,omitempty"`
	Policy        planpkg.Policy `json:"full_scan_policy"`
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
