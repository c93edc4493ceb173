package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Index shrink detection.
//
// A backup that reuses a whole subtree of its parent snapshot by ID (a
// journal scan) trusts that every blob below it is still in the
// repository. That holds until index entries are removed: a prune removes
// only blobs no snapshot uses, but `repair index` and `repair packs` drop
// blobs that are lost or damaged, which the parent may use. Either way an
// index file this cache knew disappears, so each cache remembers the index
// files it knows (the index table's, and in a small list those not merged
// into it yet) and, when one of them is no longer listed, writes the time
// into a marker file. The backup planner then refuses to reuse subtrees of
// a parent older than that: the next backup walks the tree and checks every
// reused file's blobs against the index.

func knownFile(dir string) string  { return filepath.Join(dir, "index-unmerged") }
func shrunkFile(dir string) string { return filepath.Join(dir, "index-shrunk") }

// readKnown returns the index file names listed in the cache's list of
// files not merged into the table; ok is false when there is no list.
func readKnown(dir string) (known map[string]bool, ok bool) {
	out := map[string]bool{}
	b, err := os.ReadFile(knownFile(dir))
	if err != nil {
		return out, false
	}
	for _, n := range strings.Fields(string(b)) {
		out[n] = true
	}
	return out, true
}

// findGone notes the index files the cache knew (in the table, merged, or
// in its list) that are not listed any more.
func (r *Repository) findGone(merged, listed map[string]bool) error {
	var gone []string
	for n := range merged {
		if !listed[n] {
			gone = append(gone, n)
		}
	}
	known, ok := readKnown(r.cacheDir)
	for n := range known {
		if !listed[n] && !merged[n] {
			gone = append(gone, n)
		}
	}
	if !ok {
		// No list: a new cache, one of an older version, or one whose list
		// could not be written (a full disk). Which files it knew is
		// unknown, so assume some went: a fresh cache pays nothing for it
		// (its first backup reads everything anyway), any other one walk.
		r.noteShrink()
		return r.saveKnown()
	}
	if len(gone) == 0 {
		return nil
	}
	r.mu.Lock()
	r.gone = append(r.gone, gone...)
	r.mu.Unlock()
	r.noteShrink()
	return nil
}

// noteShrink records that index files the cache knew are gone: in the
// cache for later processes, and in the handle for this one. When the
// cache cannot take the note (a full disk), its list of known files goes
// instead (removing needs no room), so that the next open, finding no
// list, assumes a shrink again; a read-only command must not fail on it.
func (r *Repository) noteShrink() {
	now := time.Now()
	r.mu.Lock()
	r.shrunkAt = now
	r.mu.Unlock()
	if err := writeFileAtomic(shrunkFile(r.cacheDir), []byte(now.UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
		_ = os.Remove(knownFile(r.cacheDir))
	}
}

// saveKnown writes the list of index files known but not merged: what the
// list held (another process of this cache may have added to it) and the
// handle's unmerged files, less the files merged into the table and those
// found gone.
func (r *Repository) saveKnown() error {
	if r.cacheDir == "" {
		return nil
	}
	known, _ := readKnown(r.cacheDir)
	r.mu.Lock()
	for _, n := range r.unmerged {
		known[n] = true
	}
	for n := range r.merged {
		delete(known, n)
	}
	for _, n := range r.gone {
		delete(known, n)
	}
	r.mu.Unlock()
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	slices.Sort(names)
	if err := writeFileAtomic(knownFile(r.cacheDir), []byte(strings.Join(names, "\n")+"\n")); err != nil {
		// Without an up-to-date list a later open could miss a removal;
		// without any list it assumes one (see findGone). Removing needs
		// no room on a full disk.
		if rmErr := os.Remove(knownFile(r.cacheDir)); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return fmt.Errorf("record index files in the cache: %w", err)
		}
	}
	return nil
}

// IndexShrunk returns when this cache last found index files gone (a prune
// or a repair removed index entries); zero if never.
func (r *Repository) IndexShrunk() (time.Time, error) {
	if r.cacheDir == "" {
		return time.Time{}, nil
	}
	r.mu.Lock()
	mem := r.shrunkAt
	r.mu.Unlock()
	b, err := os.ReadFile(shrunkFile(r.cacheDir))
	if errors.Is(err, os.ErrNotExist) {
		return mem, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", shrunkFile(r.cacheDir), err)
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		// Unreadable: assume it just happened, which only costs a full scan.
		return time.Now(), nil
	}
	if mem.After(t) {
		return mem, nil
	}
	return t, nil
}

// writeFileAtomic replaces path with data through a temporary file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
