package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	// Snapshot is an ID, a unique prefix or "latest": the newest snapshot
	// Filter matches. "SNAPSHOT:PATH" restores the contents of the
	// directory PATH (restic's syntax), as Options.Subpath does.
	Snapshot string
	Filter   snapshot.Filter
	// Options say where to and how; set Report to hear of every entry
	// (a dry run's listing).
	restore.Options
}

// RestoreResult counts what was restored (with DryRun: what would be).
// Files and Bytes count the files written, Replaced those of them (and
// other entries) that took the place of something else; Unchanged and
// UnchangedBytes the entries already at the target as the snapshot has
// them, which were left as they were (their metadata set); Skipped the
// existing entries the overwrite mode left alone.
type RestoreResult struct {
	Snapshot blob.ID `json:"snapshot"`
	// Subpath is the directory whose contents were restored ("" for the
	// whole snapshot).
	Subpath        string `json:"subpath,omitempty"`
	Target         string `json:"target"`
	DryRun         bool   `json:"dry_run,omitempty"`
	Files          uint64 `json:"files"`
	Dirs           uint64 `json:"dirs"`
	Other          uint64 `json:"other"`
	Bytes          uint64 `json:"bytes"`
	Replaced       uint64 `json:"replaced"`
	Unchanged      uint64 `json:"unchanged"`
	UnchangedBytes uint64 `json:"unchanged_bytes"`
	Skipped        uint64 `json:"skipped"`
	// Verified and VerifiedBytes count the files read back and found
	// right (with Verify).
	Verified      uint64              `json:"verified,omitempty"`
	VerifiedBytes uint64              `json:"verified_bytes,omitempty"`
	Errors        []restore.FileError `json:"errors"`
	// Mismatches lists the files whose content read back differs from
	// the snapshot (with Verify).
	Mismatches []restore.FileError `json:"mismatches"`
	// Unmatched lists the include patterns that matched nothing.
	Unmatched []string `json:"unmatched_includes"`
}

// SplitSubpath splits restic's "SNAPSHOT:PATH" into the snapshot and the
// path ("" when there is none). Snapshot references (hex IDs, "latest")
// hold no colon, so the first one separates them.
func SplitSubpath(ref string) (snap, sub string) {
	snap, sub, _ = strings.Cut(ref, ":")
	return snap, sub
}

// Restore writes a snapshot, or the parts of it opt.Include and
// opt.Exclude select, into opt.Target; owners are restored when running
// as root. Entries that could not be restored are listed in the result,
// not returned as an error. "latest" is refused while any snapshot record
// is unreadable (each is sent as a Warning, see Snapshot): that record
// may be the newest.
func (a *Repo) Restore(ctx context.Context, opt RestoreOptions) (*RestoreResult, error) {
	if opt.Target == "" {
		return nil, errors.New("restore: --target is required")
	}
	ref, sub := SplitSubpath(opt.Snapshot)
	if sub != "" {
		if opt.Subpath != "" {
			return nil, fmt.Errorf("restore: %s names a path, and so does the subpath option (%s): give one", opt.Snapshot, opt.Subpath)
		}
		opt.Subpath = sub
	}
	lock, err := a.lock(ctx, repo.LockShared, "restore")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	sn, bad, err := a.find(ctx, ref, opt.Filter)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		// Any unreadable record may be the newest snapshot: restoring an
		// older one in its place must be the user's choice.
		return nil, fmt.Errorf("restore %s: %s (the newest readable one is %s of %s); give a snapshot ID explicitly, or remove the damaged records with `tidemark repair snapshots --forget`",
			ref, unreadableNote(bad), sn.ID.Short(), sn.Time.Local().Format(time.DateTime))
	}
	opt.Owners = os.Geteuid() == 0
	res, err := restore.Run(ctx, a.r, sn.Tree, opt.Options)
	if err != nil {
		return nil, err
	}
	return &RestoreResult{Snapshot: sn.ID, Subpath: opt.Subpath, Target: opt.Target, DryRun: opt.DryRun,
		Files: res.Files, Dirs: res.Dirs, Other: res.Other, Bytes: res.Bytes, Replaced: res.Replaced,
		Unchanged: res.Unchanged, UnchangedBytes: res.UnchangedBytes, Skipped: res.Skipped,
		Verified: res.Verified, VerifiedBytes: res.VerifiedBytes,
		Errors: nonNil(res.Errors), Mismatches: nonNil(res.Mismatches), Unmatched: nonNil(res.Unmatched)}, nil
}

// nonNil makes empty lists print as [] in JSON, not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// unreadableNote says which snapshot records are unreadable and what that
// means for "latest".
func unreadableNote(bad []*snapshot.UnreadableError) string {
	ids := make([]string, len(bad))
	for i, u := range bad {
		ids[i] = u.ID.Short()
	}
	if len(bad) == 1 {
		return fmt.Sprintf("snapshot record %s is unreadable, so the latest snapshot is not known", ids[0])
	}
	return fmt.Sprintf("snapshot records %s are unreadable, so the latest snapshot is not known", strings.Join(ids, ", "))
}
