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
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/blob"
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
	// Changed, when not nil, makes this a journal scan of these directories
	// (see archive.Options.Changed); the planner sets it from a change
	// journal that proved the list complete.
	Changed []string
	// ChangedReason describes where Changed came from, for the record.
	ChangedReason string
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

// NormalizeRoots makes paths absolute and clean, resolves symlinks in their
// parent directories (the last component is stored as it is), drops
// duplicates and paths inside other roots, and sorts them.
func NormalizeRoots(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", p, err)
		}
		if abs != "/" {
			dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
			if err != nil {
				return nil, fmt.Errorf("path %s: %w", p, err)
			}
			abs = filepath.Join(dir, filepath.Base(abs))
		}
		if _, err := os.Lstat(abs); err != nil {
			return nil, fmt.Errorf("path %s: %w", p, err)
		}
		out = append(out, abs)
	}
	sort.Strings(out)
	var roots []string
	for _, p := range out {
		if len(roots) > 0 {
			last := roots[len(roots)-1]
			if p == last || last == "/" || strings.HasPrefix(p, last+"/") {
				continue
			}
		}
		roots = append(roots, p)
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

	parent, err := snapshot.LatestFor(ctx, r, host, roots)
	if err != nil {
		return nil, fmt.Errorf("find parent snapshot: %w", err)
	}
	set := StatSet(host, roots)
	plan := Plan{Roots: roots, Parent: parent}
	aopt := archive.Options{Roots: roots, Excludes: ex, OneFileSystem: opt.OneFileSystem, ReadAll: opt.ReadAll, Progress: opt.Progress, RacyWindow: opt.RacyWindow}
	switch {
	case parent == nil:
		plan.Mode, plan.Reason = snapshot.ModeFull, "no parent snapshot for this host and paths"
	case opt.ReadAll:
		plan.Mode, plan.Reason = snapshot.ModeFull, "--read-all: every file is read"
	case st == nil:
		plan.Mode, plan.Reason = snapshot.ModeFull, "no local state database: every file is read"
	default:
		has, err := st.HasDirStats(set)
		if err != nil {
			return nil, err
		}
		if !has {
			plan.Mode, plan.Reason = snapshot.ModeFull, "the local stat cache has no records for these paths (new machine or deleted cache): every file is read"
		} else {
			plan.Mode = snapshot.ModeParentAssisted
			plan.Reason = fmt.Sprintf("parent snapshot %s: files whose size, mtime, ctime, inode and device match it are not read", parent.ID.Short())
		}
	}
	if parent != nil {
		aopt.ParentTree = parent.Tree
	}
	if plan.Mode == snapshot.ModeParentAssisted {
		aopt.Stats, aopt.StatSet = st, set
		if opt.Changed != nil {
			plan.Mode, plan.Reason = snapshot.ModeJournal, opt.ChangedReason
			aopt.Changed = opt.Changed
		}
	}
	if opt.Started != nil {
		opt.Started(plan)
	}

	packedBefore, plainBefore := r.AddedBytes()
	res, err := archive.Run(ctx, r, aopt)
	var full *archive.NeedFullScanError
	if errors.As(err, &full) {
		// Safety first: scan everything, and say why.
		plan.Mode = snapshot.ModeParentAssisted
		plan.Reason = "full scan: " + full.Reason
		aopt.Changed = nil
		res, err = archive.Run(ctx, r, aopt)
	}
	if err != nil {
		return nil, err
	}
	if plan.Mode == snapshot.ModeJournal {
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
		Excludes: opt.Excludes, Settings: SettingsHash(roots, opt.Excludes, opt.OneFileSystem),
		Scan: snapshot.ScanInfo{Mode: plan.Mode, Reason: plan.Reason}, Totals: res.Totals, Summary: res.Summary, Program: Version,
	}
	if parent != nil {
		pid := parent.ID
		sn.Parent = &pid
	}
	sn.Summary.BytesAdded, sn.Summary.BytesAddedRaw = uint64(packed-packedBefore), uint64(plain-plainBefore)
	sn.Summary.Duration = time.Since(start)
	if err := snapshot.Save(ctx, r, sn); err != nil {
		return nil, err
	}
	// Only now is the snapshot durable; the stat cache may describe it.
	if st != nil {
		if err := st.PutDirStats(ctx, set, res.StatUpdates); err != nil {
			return nil, err
		}
		if err := st.RecordBackup(ctx, state.Backup{Snapshot: sn.ID.String(), Time: sn.Time, Host: host, Roots: roots,
			Mode: plan.Mode, Reason: plan.Reason, FilesNew: res.Summary.FilesNew, FilesChanged: res.Summary.FilesChanged,
			FilesUnchanged: res.Summary.FilesUnchanged, BytesRead: res.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
			TotalBytes: res.Totals.Bytes, TotalFiles: res.Totals.Files, Errors: res.Summary.Errors, Duration: sn.Summary.Duration}); err != nil {
			return nil, err
		}
	}
	return &Result{Snapshot: sn, Parent: parent, Errors: res.Errors}, nil
}

// ParentID returns the parent's ID or Null.
func (r *Result) ParentID() blob.ID {
	if r.Parent == nil {
		return blob.Null
	}
	return r.Parent.ID
}
