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
	// Original names the snapshot this one is a copy of: the damaged one
	// it repairs (repair snapshots), or the first record of a snapshot
	// whose tags changed (tag keeps an Original already set, as restic
	// does).
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

// UnreadableError is a snapshot record that could not be read or decoded.
// Its time is unknown, so it may be newer than every readable one.
type UnreadableError struct {
	ID blob.ID
	// Size is the record's stored size in bytes, -1 when not known.
	Size int64
	Err  error
	// undecodable: the record authenticates but does not decode, so it
	// was written that way (by another version, or a bug).
	undecodable bool
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("load snapshot %s: %v", e.ID.Short(), e.Err)
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// Damaged reports whether the stored record is proven damaged: its bytes
// do not match its name or fail authentication. Other errors (a failed
// read) may pass, and a record that authenticates but does not decode was
// written that way, perhaps by a newer version.
func (e *UnreadableError) Damaged() bool { return !e.undecodable && errors.Is(e.Err, repo.ErrCorrupt) }

// Load reads one snapshot record. Its errors are *UnreadableError.
func Load(ctx context.Context, r *repo.Repository, id blob.ID) (*Snapshot, error) {
	plain, err := r.LoadUnpacked(ctx, backend.Snapshot, id.String())
	if err != nil {
		return nil, &UnreadableError{ID: id, Size: -1, Err: err}
	}
	var sn Snapshot
	if err := json.Unmarshal(plain, &sn); err != nil {
		return nil, &UnreadableError{ID: id, Size: -1, Err: fmt.Errorf("decode: %v: %w", err, repo.ErrCorrupt), undecodable: true}
	}
	sn.ID = id
	return &sn, nil
}

// LoadFromRepository is Load reading the record from the repository
// itself, never from the local cache: maintenance judges what every host
// sees, and an intact cached copy must not hide a damaged stored one.
func LoadFromRepository(ctx context.Context, r *repo.Repository, id blob.ID) (*Snapshot, error) {
	plain, err := r.LoadUnpackedRaw(ctx, backend.Snapshot, id.String())
	if err != nil {
		return nil, &UnreadableError{ID: id, Size: -1, Err: err}
	}
	var sn Snapshot
	if err := json.Unmarshal(plain, &sn); err != nil {
		return nil, &UnreadableError{ID: id, Size: -1, Err: fmt.Errorf("decode: %v: %w", err, repo.ErrCorrupt), undecodable: true}
	}
	sn.ID = id
	return &sn, nil
}

// Record is a stored snapshot record as listed: its ID and size.
type Record struct {
	ID   blob.ID
	Size int64
}

// Records lists the stored snapshot records. Files whose names are not
// snapshot IDs are skipped; check reports them.
func Records(ctx context.Context, r *repo.Repository) ([]Record, error) {
	var recs []Record
	err := r.Backend().List(ctx, backend.Snapshot, func(name string, size int64) error {
		id, err := blob.ParseID(name)
		if err != nil {
			return nil // not ours; check reports it
		}
		recs = append(recs, Record{ID: id, Size: size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return recs, nil
}

// IDs lists the IDs of all snapshots.
func IDs(ctx context.Context, r *repo.Repository) ([]blob.ID, error) {
	recs, err := Records(ctx, r)
	if err != nil {
		return nil, err
	}
	ids := make([]blob.ID, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	return ids, nil
}

// All loads every snapshot, oldest first. Unreadable ones are returned in
// errs (each an *UnreadableError with the record's size) rather than
// failing the listing; records removed since they were listed (by a
// concurrent forget) are left out.
func All(ctx context.Context, r *repo.Repository) (sns []*Snapshot, errs []error, err error) {
	recs, err := Records(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	for _, rec := range recs {
		sn, err := Load(ctx, r, rec.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if errors.Is(err, backend.ErrNotFound) {
				continue
			}
			var u *UnreadableError
			if errors.As(err, &u) {
				u.Size = rec.Size
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

// Latest returns the newest readable snapshot f matches (nil if there is
// none) and the records that could not be read. An unreadable record's
// time, host and paths are unknown: when there are any, the snapshot
// returned is only the newest of those that could be read.
func Latest(ctx context.Context, r *repo.Repository, f Filter) (*Snapshot, []*UnreadableError, error) {
	sns, errs, err := All(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	bad := make([]*UnreadableError, 0, len(errs))
	for _, e := range errs {
		var u *UnreadableError
		if !errors.As(e, &u) {
			return nil, nil, e
		}
		bad = append(bad, u)
	}
	for i := len(sns) - 1; i >= 0; i-- {
		if f.Match(sns[i]) {
			return sns[i], bad, nil
		}
	}
	return nil, bad, nil
}

// Match returns the record whose ID is ref or starts with it (case does
// not matter); a prefix must be unique.
func Match(recs []Record, ref string) (Record, error) {
	ref = strings.ToLower(ref)
	var match []Record
	for _, rec := range recs {
		if ref != "" && strings.HasPrefix(rec.ID.String(), ref) {
			match = append(match, rec)
		}
	}
	switch {
	case len(match) == 0:
		return Record{}, fmt.Errorf("snapshot %q: %w", ref, ErrNoSnapshot)
	case len(match) > 1:
		return Record{}, fmt.Errorf("snapshot prefix %q is ambiguous (%d matches)", ref, len(match))
	}
	return match[0], nil
}

// Find resolves "latest", the newest snapshot f matches, or a unique ID
// prefix. For "latest" it also returns the records that could not be read
// (see Latest), and fails when none of the rest matches. A snapshot named
// by ID must match f as well: a filter given with an ID is a condition
// on it, and naming a snapshot the filter excludes is most likely a
// mistake.
func Find(ctx context.Context, r *repo.Repository, ref string, f Filter) (*Snapshot, []*UnreadableError, error) {
	if ref == "latest" {
		sn, bad, err := Latest(ctx, r, f)
		switch {
		case err != nil:
			return nil, nil, err
		case sn == nil && len(bad) > 0 && f.Empty():
			return nil, bad, fmt.Errorf("latest: %w: none of the %d snapshot records can be read", ErrNoSnapshot, len(bad))
		case sn == nil && len(bad) > 0:
			return nil, bad, fmt.Errorf("latest%s: %w among the readable records, and %d cannot be read", f.within(), ErrNoSnapshot, len(bad))
		case sn == nil:
			return nil, nil, fmt.Errorf("latest%s: %w", f.within(), ErrNoSnapshot)
		}
		return sn, bad, nil
	}
	recs, err := Records(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	rec, err := Match(recs, ref)
	if err != nil {
		return nil, nil, err
	}
	sn, err := Load(ctx, r, rec.ID)
	if err != nil {
		var u *UnreadableError
		if errors.As(err, &u) {
			u.Size = rec.Size
		}
		return nil, nil, err
	}
	if !f.Match(sn) {
		return nil, nil, fmt.Errorf("snapshot %s (host %s, paths %s, tags %s) does not match %s: %w", sn.ID.Short(), sn.Host,
			strings.Join(sn.Roots, " "), orNone(sn.Tags), f, ErrNoSnapshot)
	}
	return sn, nil, nil
}

// within describes the filter after "latest" in messages.
func (f Filter) within() string {
	if f.Empty() {
		return ""
	}
	return " (" + f.String() + ")"
}

func orNone(tags []string) string {
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, ",")
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

// ErrPathNotFound is returned by FindPath for a path the tree does not
// hold.
var ErrPathNotFound = errors.New("not found in snapshot")

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
			return nil, fmt.Errorf("path %q %w", path, ErrPathNotFound)
		}
		if i == len(parts)-1 {
			return n, nil
		}
		if n.Type != Dir {
			return nil, fmt.Errorf("path %q %w: %q is not a directory", path, ErrPathNotFound, strings.Join(parts[:i+1], "/"))
		}
		cur = n.Subtree
	}
	return nil, fmt.Errorf("path %q %w", path, ErrPathNotFound)
}
