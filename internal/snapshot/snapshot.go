package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
)

// Scan modes recorded in a snapshot.
const (
	// ModeFull: every file was read; nothing came from a parent.
	ModeFull = "full"
	// ModeParentAssisted: the whole tree was walked and stat'ed; files whose
	// metadata matched the parent snapshot were not read again.
	ModeParentAssisted = "parent-assisted"
	// ModeJournal: only the directories a change journal reported were
	// listed; every other subtree was taken from the parent by ID.
	ModeJournal = "journal"
	// ModeExternal: like ModeJournal, with the changed paths given by the
	// user (--changed-from), who is trusted for what is not listed.
	ModeExternal = "external list"
)

// ScanInfo says how a snapshot was scanned and why.
type ScanInfo struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason"`
	// Cursor is the change journal position taken (after a fence) before
	// the scan: the next backup asks the journal what changed since.
	Cursor json.RawMessage `json:"cursor,omitempty"`
	// JournalSinceFull counts journal-driven backups since the last full
	// scan in this snapshot's chain; LastFull is that full scan's time.
	// The forced-full-scan policy uses both.
	JournalSinceFull int       `json:"journal_since_full"`
	LastFull         time.Time `json:"last_full"`
}

// Summary holds the counts of one backup run.
type Summary struct {
	FilesNew       uint64        `json:"files_new"`
	FilesChanged   uint64        `json:"files_changed"`
	FilesUnchanged uint64        `json:"files_unchanged"`
	DirsNew        uint64        `json:"dirs_new"`
	DirsChanged    uint64        `json:"dirs_changed"`
	DirsUnchanged  uint64        `json:"dirs_unchanged"`
	BytesRead      uint64        `json:"bytes_read"`
	BytesAdded     uint64        `json:"bytes_added"`
	BytesAddedRaw  uint64        `json:"bytes_added_plain"`
	Errors         uint64        `json:"errors"`
	Duration       time.Duration `json:"duration_ns"`
}

// Snapshot is the record of one backup.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Username string    `json:"username,omitempty"`
	Roots    []string  `json:"roots"`
	Tree     blob.ID   `json:"tree"`
	Parent   *blob.ID  `json:"parent,omitempty"`
	// Original names the snapshot this one is a repaired copy of.
	Original *blob.ID   `json:"original,omitempty"`
	Tags     []string   `json:"tags,omitempty"`
	Excludes []string   `json:"excludes,omitempty"`
	Settings string     `json:"settings_hash"`
	Scan     ScanInfo   `json:"scan"`
	Totals   Aggregates `json:"totals"`
	Summary  Summary    `json:"summary"`
	Program  string     `json:"program"`

	// ID is the snapshot's storage name; it is not part of the record.
	ID blob.ID `json:"-"`
}

// Save stores the snapshot record and sets its ID.
func Save(ctx context.Context, r *repo.Repository, sn *Snapshot) error {
	buf, err := json.Marshal(sn)
	if err != nil {
		return err
	}
	id, err := r.SaveUnpacked(ctx, backend.Snapshot, buf)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	sn.ID = id
	return nil
}

// Load reads one snapshot record.
func Load(ctx context.Context, r *repo.Repository, id blob.ID) (*Snapshot, error) {
	plain, err := r.LoadUnpacked(ctx, backend.Snapshot, id.String())
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id.Short(), err)
	}
	var sn Snapshot
	if err := json.Unmarshal(plain, &sn); err != nil {
		return nil, fmt.Errorf("load snapshot %s: %v: %w", id.Short(), err, repo.ErrCorrupt)
	}
	sn.ID = id
	return &sn, nil
}

// IDs lists the IDs of all snapshots.
func IDs(ctx context.Context, r *repo.Repository) ([]blob.ID, error) {
	var ids []blob.ID
	err := r.Backend().List(ctx, backend.Snapshot, func(name string, _ int64) error {
		id, err := blob.ParseID(name)
		if err != nil {
			return nil // not ours; check reports it
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return ids, nil
}

// All loads every snapshot, oldest first. Unreadable ones are returned in
// errs rather than failing the listing.
func All(ctx context.Context, r *repo.Repository) (sns []*Snapshot, errs []error, err error) {
	ids, err := IDs(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		sn, err := Load(ctx, r, id)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, nil, err
			}
			errs = append(errs, err)
			continue
		}
		sns = append(sns, sn)
	}
	sort.Slice(sns, func(i, j int) bool {
		if !sns[i].Time.Equal(sns[j].Time) {
			return sns[i].Time.Before(sns[j].Time)
		}
		return sns[i].ID.String() < sns[j].ID.String()
	})
	return sns, errs, nil
}

// ErrNoSnapshot is returned when a snapshot reference matches nothing.
var ErrNoSnapshot = errors.New("no matching snapshot")

// Find resolves "latest" or a unique ID prefix.
func Find(ctx context.Context, r *repo.Repository, ref string) (*Snapshot, error) {
	if ref == "latest" {
		sns, _, err := All(ctx, r)
		if err != nil {
			return nil, err
		}
		if len(sns) == 0 {
			return nil, fmt.Errorf("latest: %w", ErrNoSnapshot)
		}
		return sns[len(sns)-1], nil
	}
	ids, err := IDs(ctx, r)
	if err != nil {
		return nil, err
	}
	var match []blob.ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), strings.ToLower(ref)) {
			match = append(match, id)
		}
	}
	switch {
	case ref == "" || len(match) == 0:
		return nil, fmt.Errorf("snapshot %q: %w", ref, ErrNoSnapshot)
	case len(match) > 1:
		return nil, fmt.Errorf("snapshot prefix %q is ambiguous (%d matches)", ref, len(match))
	}
	return Load(ctx, r, match[0])
}

// LatestFor returns the newest snapshot of host with exactly these roots,
// the parent of the next backup of the same set; nil if none.
func LatestFor(ctx context.Context, r *repo.Repository, host string, roots []string) (*Snapshot, error) {
	sns, _, err := All(ctx, r)
	if err != nil {
		return nil, err
	}
	key := strings.Join(roots, "\x00")
	for i := len(sns) - 1; i >= 0; i-- {
		if sns[i].Host == host && strings.Join(sns[i].Roots, "\x00") == key {
			return sns[i], nil
		}
	}
	return nil, nil
}

// LoadTree reads and decodes a tree blob.
func LoadTree(ctx context.Context, r *repo.Repository, id blob.ID) (*Tree, error) {
	plain, err := r.LoadBlob(ctx, blob.Tree, id)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	t, err := DecodeTree(plain)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// SaveTree encodes and stores a tree, returning its ID.
func SaveTree(ctx context.Context, r *repo.Repository, t *Tree) (blob.ID, error) {
	buf := t.Encode()
	id := r.Key().ID(buf)
	if _, err := r.SaveBlob(ctx, blob.Tree, id, buf); err != nil {
		return id, fmt.Errorf("save tree: %w", err)
	}
	return id, nil
}

// Walk visits every node below tree id in depth-first order (entries sorted
// by name), calling fn with the slash-separated path of each node. If fn
// returns SkipDir for a directory, its contents are skipped.
func Walk(ctx context.Context, r *repo.Repository, id blob.ID, prefix string, fn func(path string, n *Node) error) error {
	t, err := LoadTree(ctx, r, id)
	if err != nil {
		return err
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := n.Name
		if prefix != "" {
			p = prefix + "/" + n.Name
		}
		err := fn(p, n)
		if errors.Is(err, ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if n.Type == Dir {
			if err := Walk(ctx, r, n.Subtree, p, fn); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// ErrSkipDir tells Walk not to descend into a directory.
var ErrSkipDir = errors.New("skip this directory")

// FindPath returns the node at a slash-separated path below tree id.
func FindPath(ctx context.Context, r *repo.Repository, id blob.ID, path string) (*Node, error) {
	path = strings.Trim(path, "/")
	if path == "" {
		return &Node{Type: Dir, Subtree: id}, nil
	}
	cur := id
	parts := strings.Split(path, "/")
	for i, part := range parts {
		t, err := LoadTree(ctx, r, cur)
		if err != nil {
			return nil, err
		}
		n := t.Find(part)
		if n == nil {
			return nil, fmt.Errorf("path %q not found in snapshot", path)
		}
		if i == len(parts)-1 {
			return n, nil
		}
		if n.Type != Dir {
			return nil, fmt.Errorf("path %q: %q is not a directory", path, strings.Join(parts[:i+1], "/"))
		}
		cur = n.Subtree
	}
	return nil, fmt.Errorf("path %q not found", path)
}
