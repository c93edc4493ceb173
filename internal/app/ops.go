package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repair"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// CacheRebuildResult says what a cache rebuild recreated.
type CacheRebuildResult struct {
	Dir       string `json:"dir"`
	Blobs     int    `json:"blobs"`
	TreePacks int    `json:"tree_packs"`
	Snapshots int    `json:"snapshots"`
	// History counts the backups of Host entered into the history.
	History int    `json:"history"`
	Host    string `json:"-"`
}

// RebuildCache deletes the repository's local cache directory and builds
// it again from the repository alone: the index table, every tree pack and
// snapshot record, and the backup history of host (default: this
// machine). The stat cache cannot be recreated; the state database
// records the rebuild, so the next backup of each set says why it reads
// every file. Unreadable snapshot records are sent as Warning events.
func RebuildCache(ctx context.Context, opt Options, host string, events func(Event)) (*CacheRebuildResult, error) {
	if opt.NoCache {
		return nil, errors.New("cache rebuild: --no-cache was given, so there is no cache to rebuild")
	}
	if host == "" {
		var err error
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	a, err := Open(ctx, opt)
	if err != nil {
		return nil, err
	}
	dir, err := a.CacheDir()
	a.Close()
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("cache rebuild: remove %s: %w", dir, err)
	}
	// Opening builds the index table afresh.
	if a, err = Open(ctx, opt); err != nil {
		return nil, err
	}
	defer a.Close()
	lock, err := a.lock(ctx, repo.LockShared, "cache rebuild")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	res := &CacheRebuildResult{Dir: dir, Host: host}
	err = a.r.Raw().List(ctx, backend.Tree, func(name string, _ int64) error {
		if _, err := a.r.Backend().Load(ctx, backend.Handle{Type: backend.Tree, Name: name}, 0, 0); err != nil {
			return fmt.Errorf("cache tree pack %s: %w", name, err)
		}
		res.TreePacks++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache rebuild: %w", err)
	}
	sns, errs, err := snapshot.All(ctx, a.r)
	if err != nil {
		return nil, fmt.Errorf("cache rebuild: %w", err)
	}
	for _, e := range errs {
		emitter(events).send(Warning{Message: fmt.Sprintf("%v (not in the history)", e)})
	}
	st, err := a.state()
	if err != nil {
		return nil, err
	}
	for _, sn := range sns {
		if sn.Host != host {
			continue
		}
		res.History++
		if err := st.RecordBackup(ctx, state.Backup{Snapshot: sn.ID.String(), Time: sn.Time, Host: sn.Host, Roots: sn.Roots,
			Mode: sn.Scan.Mode, Reason: sn.Scan.Reason, FilesNew: sn.Summary.FilesNew, FilesChanged: sn.Summary.FilesChanged,
			FilesUnchanged: sn.Summary.FilesUnchanged, BytesRead: sn.Summary.BytesRead, BytesAdded: sn.Summary.BytesAdded,
			TotalBytes: sn.Totals.Bytes, TotalFiles: sn.Totals.Files, Errors: sn.Summary.Errors, Duration: sn.Summary.Duration}); err != nil {
			return nil, err
		}
	}
	if err := st.MarkRebuilt(ctx, time.Now()); err != nil {
		return nil, err
	}
	res.Snapshots, res.Blobs = len(sns), a.r.Index().Len()
	return res, nil
}

// RepairIndexResult is the rebuilt index and what the snapshots lose by it.
type RepairIndexResult struct {
	Index     repair.IndexResult     `json:"index"`
	Snapshots repair.SnapshotsResult `json:"snapshots"`
}

// RepairIndex rebuilds the index from the pack headers under an exclusive
// lock, then names what every snapshot lost (judged by the new index).
// Its warnings are sent as Warning events.
func (a *Repo) RepairIndex(ctx context.Context, events func(Event)) (*RepairIndexResult, error) {
	lock, err := a.lock(ctx, repo.LockExclusive, "repair index")
	if err != nil {
		return nil, err
	}
	res := &RepairIndexResult{}
	res.Index, err = repair.RebuildIndex(ctx, a.r, func(f string, args ...any) {
		emitter(events).send(Warning{Message: fmt.Sprintf(f, args...)})
	})
	lock.Unlock()
	if err != nil {
		return nil, fmt.Errorf("repair index: %w", err)
	}
	if err := a.reopen(ctx); err != nil {
		return nil, err
	}
	if res.Snapshots, err = repair.RepairSnapshots(ctx, a.r, repair.SnapshotsOptions{DryRun: true}); err != nil {
		return nil, fmt.Errorf("repair index: find what snapshots lost: %w", err)
	}
	return res, nil
}

// RepairSnapshots writes copies of the snapshots that reference lost data,
// leaving out what is gone, and names the snapshot records that cannot be
// read; with opt.Forget it removes the damaged originals and the damaged
// records (see repair.RepairSnapshots). Exclusive unless opt.DryRun.
func (a *Repo) RepairSnapshots(ctx context.Context, opt repair.SnapshotsOptions) (*repair.SnapshotsResult, error) {
	if !opt.DryRun {
		lock, err := a.lock(ctx, repo.LockExclusive, "repair snapshots")
		if err != nil {
			return nil, err
		}
		defer lock.Unlock()
	}
	res, err := repair.RepairSnapshots(ctx, a.r, opt)
	if err != nil {
		return nil, fmt.Errorf("repair snapshots: %w", err)
	}
	return &res, nil
}

// Key describes one key file.
type Key struct {
	ID       string     `json:"id"`
	Current  bool       `json:"current"`
	Created  *time.Time `json:"created,omitempty"`
	Host     string     `json:"host,omitempty"`
	Username string     `json:"username,omitempty"`
	KDF      string     `json:"kdf,omitempty"`
	// Error says why the key file cannot be used.
	Error string `json:"error,omitempty"`
}

// Keys lists the key files; Current marks the one this handle opened.
func (a *Repo) Keys(ctx context.Context) ([]Key, error) {
	keys, err := a.r.Keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(keys))
	for _, k := range keys {
		kj := Key{ID: k.ID, Current: k.Current}
		if k.Err != nil {
			kj.Error = k.Err.Error()
		} else {
			created := k.Created
			kj.Created, kj.Host, kj.Username, kj.KDF = &created, k.Host, k.Username, k.KDF
		}
		out = append(out, kj)
	}
	return out, nil
}

// KeyChange names the keys a key operation added and removed.
type KeyChange struct {
	Added   string `json:"added,omitempty"`
	Removed string `json:"removed,omitempty"`
}

// AddKey adds a key file for password, opening the same master key.
func (a *Repo) AddKey(ctx context.Context, password []byte) (*KeyChange, error) {
	lock, err := a.lock(ctx, repo.LockShared, "key add")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	id, err := a.r.AddKey(ctx, password)
	if err != nil {
		return nil, err
	}
	return &KeyChange{Added: id}, nil
}

// RemoveKey removes the key file with ID (or unique prefix) id; never the
// last usable key or the one this handle opened.
func (a *Repo) RemoveKey(ctx context.Context, id string) (*KeyChange, error) {
	// Exclusive: two clients removing each other's keys at once could
	// otherwise leave the repository with none.
	lock, err := a.lock(ctx, repo.LockExclusive, "key remove")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if err := a.r.RemoveKey(ctx, id); err != nil {
		return nil, err
	}
	return &KeyChange{Removed: strings.ToLower(id)}, nil
}

// ChangePassword adds a key for password, then removes the key this
// handle opened.
func (a *Repo) ChangePassword(ctx context.Context, password []byte) (*KeyChange, error) {
	// Shared suffices: passwd removes only its own key, after adding the
	// new one, and `key remove` holds an exclusive lock.
	lock, err := a.lock(ctx, repo.LockShared, "key passwd")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	old := a.r.KeyID()
	id, err := a.r.ChangePassword(ctx, password)
	if err != nil {
		return nil, err
	}
	return &KeyChange{Added: id, Removed: old}, nil
}

// RepairPacksResult is what repair packs salvaged and what the snapshots
// lose by it.
type RepairPacksResult struct {
	Packs     repair.PacksResult     `json:"packs"`
	Snapshots repair.SnapshotsResult `json:"snapshots"`
}

// RepairPacks salvages the damaged packs ids (IDs or "data/ID",
// "trees/ID" as check names them) under an exclusive lock: intact blobs
// are copied into new packs, the packs leave the index and are deleted.
// It then names what every snapshot lost.
func (a *Repo) RepairPacks(ctx context.Context, ids []string, events func(Event)) (*RepairPacksResult, error) {
	var packs []blob.ID
	for _, s := range ids {
		s = s[strings.LastIndex(s, "/")+1:]
		id, err := blob.ParseID(s)
		if err != nil {
			return nil, fmt.Errorf("repair packs: %q is not a pack ID: %w", s, err)
		}
		packs = append(packs, id)
	}
	lock, err := a.lock(ctx, repo.LockExclusive, "repair packs")
	if err != nil {
		return nil, err
	}
	res := &RepairPacksResult{}
	res.Packs, err = repair.RepairPacks(ctx, a.r, packs, func(f string, args ...any) {
		emitter(events).send(Warning{Message: fmt.Sprintf(f, args...)})
	})
	lock.Unlock()
	if err != nil {
		return nil, fmt.Errorf("repair packs: %w", err)
	}
	if err := a.reopen(ctx); err != nil {
		return nil, err
	}
	if res.Snapshots, err = repair.RepairSnapshots(ctx, a.r, repair.SnapshotsOptions{DryRun: true}); err != nil {
		return nil, fmt.Errorf("repair packs: find what snapshots lost: %w", err)
	}
	return res, nil
}
