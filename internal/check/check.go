package check

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Options select what Run checks.
type Options struct {
	// ReadData downloads packs and verifies every blob in them.
	ReadData bool
	// SubsetFraction, in (0,1], reads that fraction of the packs, chosen at
	// random. SubsetN and SubsetT (1 <= N <= T) read the packs whose
	// position in the sorted list of pack IDs, modulo T, is N-1, so runs
	// with 1/T to T/T together read every pack once. A subset implies
	// ReadData; zero values read every pack.
	SubsetFraction float64
	SubsetN        int
	SubsetT        int
	// WithCache reads trees through the local cache. By default they are
	// read from the repository itself (through a temporary cache of whole
	// tree packs, removed afterwards): a cached intact copy must not hide
	// a damaged stored one that every other host would read.
	WithCache bool
}

// reading reports whether packs are to be read.
func (o Options) reading() bool { return o.ReadData || o.SubsetFraction > 0 || o.SubsetT > 0 }

func (o Options) validate() error {
	switch {
	case o.SubsetN != 0 || o.SubsetT != 0:
		if o.SubsetN < 1 || o.SubsetN > o.SubsetT {
			return fmt.Errorf("read-data subset %d/%d: want 1 <= n <= t", o.SubsetN, o.SubsetT)
		}
		if o.SubsetFraction != 0 {
			return errors.New("read-data subset: give either a fraction or n/t, not both")
		}
	case o.SubsetFraction != 0 && !(o.SubsetFraction > 0 && o.SubsetFraction <= 1):
		return fmt.Errorf("read-data subset fraction %v: want more than 0 and at most 1", o.SubsetFraction)
	}
	return nil
}

// ParseSubset parses a --read-data-subset value: a percentage ("5%",
// "2.5%") or "n/t" with 1 <= n <= t ("1/10").
func ParseSubset(s string) (fraction float64, n, t int, err error) {
	bad := func(why string) error { return fmt.Errorf("invalid read-data subset %q: %s", s, why) }
	if num, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, 0, 0, bad("want a percentage such as 5% or 2.5%")
		}
		if !(f > 0 && f <= 100) {
			return 0, 0, 0, bad("the percentage must be more than 0 and at most 100")
		}
		return f / 100, 0, 0, nil
	}
	ns, ts, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, 0, bad("want a percentage (5%) or n/t (1/10)")
	}
	n, err1 := strconv.Atoi(ns)
	t, err2 := strconv.Atoi(ts)
	if err1 != nil || err2 != nil {
		return 0, 0, 0, bad("want n/t with whole numbers, such as 1/10")
	}
	if n < 1 || n > t {
		return 0, 0, 0, bad("n/t needs 1 <= n <= t")
	}
	return 0, n, t, nil
}

// Problem kinds.
const (
	KindCorruptIndex      = "corrupt-index"      // an index file cannot be read or decoded
	KindMissingPack       = "missing-pack"       // an indexed pack is not stored
	KindSizeMismatch      = "size-mismatch"      // a pack is too short, or a file's size disagrees with its blobs
	KindCorruptSnapshot   = "corrupt-snapshot"   // a snapshot record cannot be read or decoded
	KindCorruptTree       = "corrupt-tree"       // a tree cannot be loaded or decoded
	KindMissingBlob       = "missing-blob"       // a referenced blob is not indexed, or has the wrong type
	KindAggregateMismatch = "aggregate-mismatch" // recorded totals disagree with the tree
	KindCorruptPack       = "corrupt-pack"       // a pack's bytes do not match its name, or its header is unreadable
	KindCorruptBlob       = "corrupt-blob"       // a blob fails authentication or does not hash to its ID
	KindIndexMismatch     = "index-mismatch"     // a pack's header or blobs disagree with the index
	KindReadError         = "read-error"         // a pack could not be downloaded
	KindHardLink          = "hard-link"          // a hard-link record names no file of the snapshot, or one with other content
)

// Problem is one thing wrong with the repository.
type Problem struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`         // e.g. "data/<pack ID>", "snapshot 1a2b3c4d", "tree 5e6f7a8b"
	Blob   string `json:"blob,omitempty"` // the blob concerned, when there is one
	Path   string `json:"path,omitempty"` // affected path in a snapshot, when known
	Err    string `json:"error"`
}

// Summary counts what Run checked.
type Summary struct {
	Snapshots int   `json:"snapshots"` // snapshot records loaded
	Trees     int   `json:"trees"`     // distinct trees visited
	Blobs     int   `json:"blobs"`     // distinct blobs in the index
	Packs     int   `json:"packs"`     // packs referenced by the index
	PacksRead int   `json:"packs_read"`
	BytesRead int64 `json:"bytes_read"`
	// UnreferencedPacks are stored but in no index: what an interrupted
	// backup leaves behind, not a problem.
	UnreferencedPacks int `json:"unreferenced_packs"`
	// UnknownFiles are files whose names no Tidemark object has (not IDs):
	// put there by something else, left alone and not counted as problems.
	UnknownFiles []string `json:"unknown_files,omitempty"`
	Problems     int      `json:"problems"`
}

// packInfo is what the index says about one pack.
type packInfo struct {
	ns    backend.FileType
	blobs []repo.PackedBlob
	end   int64 // end of the last indexed blob
	size  int64 // size in the backend, -1 when it is missing
}

type treeState struct {
	agg snapshot.Aggregates
	ok  bool
	// links are the hard-linked files below the tree, nil for none.
	links *treeLinks
}

// damage is a problem with stored blobs. It is reported once for each path
// whose content it affects, or once without a path if no snapshot
// references the blobs.
type damage struct {
	p     Problem
	paths map[string]bool // reported so far
}

type checker struct {
	r      *repo.Repository
	opt    Options
	report func(Problem)

	// mu serializes report and guards sum and damage while packs are read
	// concurrently; the tree walk runs alone afterwards.
	mu      sync.Mutex
	sum     Summary
	damaged map[blob.ID]*damage
	damages []*damage

	packs map[blob.ID]*packInfo
	// doomed holds the packs named only by doomed index files (an
	// unfinished prune's): whether each is stored. Their blobs may be read
	// but are not checked as indexed packs.
	doomed map[blob.ID]bool
	trees  map[blob.ID]treeState
	// treeBE is where trees are read from: the repository through a
	// temporary cache, or with WithCache the local cache.
	treeBE backend.Backend
	// linksChecked holds the root trees whose hard links were checked,
	// linksReported the hard-link problems reported (links.go).
	linksChecked  map[blob.ID]bool
	linksReported map[string]bool
}

// Run checks r and calls report, from one goroutine at a time, for every
// problem found. It returns an error only when checking cannot go on
// (context cancelled, a listing fails, invalid options).
//
// Index files, snapshot records, packs and (unless opt.WithCache) trees
// are read from r.Raw(), so an intact cached copy cannot hide a damaged
// stored one. Run adds the packs of every index file it reads to
// r.Index(), so that the index matches what it checks even if backups
// added index files since r was opened.
//
// Problems that lose file content (missing or truncated packs, corrupt
// blobs) are reported once the trees have been walked, with the paths they
// affect. Each tree is visited once, so a path is named only where a
// shared subtree is first reached.
func Run(ctx context.Context, r *repo.Repository, opt Options, report func(Problem)) (Summary, error) {
	if err := opt.validate(); err != nil {
		return Summary{}, err
	}
	if report == nil {
		report = func(Problem) {}
	}
	c := &checker{r: r, opt: opt, report: report, damaged: map[blob.ID]*damage{}, treeBE: r.Backend(),
		packs: map[blob.ID]*packInfo{}, doomed: map[blob.ID]bool{}, trees: map[blob.ID]treeState{},
		linksChecked: map[blob.ID]bool{}, linksReported: map[string]bool{}}
	if !opt.WithCache {
		tmp, err := os.MkdirTemp("", "tidemark-check-")
		if err != nil {
			return c.sum, fmt.Errorf("check: temporary tree cache: %w", err)
		}
		defer os.RemoveAll(tmp)
		if c.treeBE, err = cache.Wrap(r.Raw(), tmp); err != nil {
			return c.sum, fmt.Errorf("check: %w", err)
		}
	}
	// Listed in the order a backup writes (packs, index, snapshot) reversed,
	// so that a backup finishing meanwhile adds only unreferenced packs.
	names, err := c.listSnapshots(ctx)
	if err != nil {
		return c.sum, fmt.Errorf("check: %w", err)
	}
	if err := c.loadIndex(ctx); err != nil {
		return c.sum, fmt.Errorf("check: %w", err)
	}
	if err := c.checkPacks(ctx); err != nil {
		return c.sum, fmt.Errorf("check: %w", err)
	}
	sns, err := c.loadSnapshots(ctx, names)
	if err != nil {
		return c.sum, fmt.Errorf("check: %w", err)
	}
	if opt.reading() {
		if err := c.readData(ctx); err != nil {
			return c.sum, fmt.Errorf("check: %w", err)
		}
	}
	for _, sn := range sns {
		if err := c.checkSnapshot(ctx, sn); err != nil {
			return c.sum, fmt.Errorf("check: %w", err)
		}
	}
	for _, d := range c.damages {
		if len(d.paths) == 0 {
			c.problem(d.p)
		}
	}
	return c.sum, nil
}

func (c *checker) problem(p Problem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum.Problems++
	c.report(p)
}

// addDamage records p as the fate of blobs of pack. Only blobs whose
// indexed copy is in this pack are affected: a copy elsewhere still serves.
func (c *checker) addDamage(p Problem, pack blob.ID, blobs []repo.PackedBlob) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := &damage{p: p, paths: map[string]bool{}}
	c.damages = append(c.damages, d)
	for _, b := range blobs {
		if loc, ok := c.r.Index().Lookup(b.ID); ok && loc.Pack == pack && c.damaged[b.ID] == nil {
			c.damaged[b.ID] = d
		}
	}
}

// blame reports the damage of blob id, if any, at path.
func (c *checker) blame(id blob.ID, path string) bool {
	d := c.damaged[id]
	if d == nil {
		return false
	}
	// A file changed between snapshots is reached at its path again.
	if !d.paths[path] {
		d.paths[path] = true
		p := d.p
		p.Path = path
		c.problem(p)
	}
	return true
}

// loadIndex decodes every index file, recording the packs it lists.
func (c *checker) loadIndex(ctx context.Context) error {
	var names []string
	if err := c.r.Raw().List(ctx, backend.Index, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := blob.ParseID(name); err != nil {
			c.sum.UnknownFiles = append(c.sum.UnknownFiles, "index/"+name)
			continue
		}
		plain, err := c.r.LoadUnpackedRaw(ctx, backend.Index, name)
		var packs []repo.IndexPack
		if err == nil {
			packs, err = repo.DecodeIndex(plain)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.problem(Problem{Kind: KindCorruptIndex, Object: "index/" + name, Err: err.Error()})
			continue
		}
		c.r.AddIndexFile(name, packs)
		for _, p := range packs {
			if p.Doomed {
				c.doomed[p.ID] = false
				continue
			}
			if !c.addPack(p) {
				c.problem(Problem{Kind: KindCorruptIndex, Object: "index/" + name,
					Err: fmt.Sprintf("pack %s mixes data and tree blobs", p.ID.Short())})
			}
		}
	}
	c.sum.Packs = len(c.packs)
	return c.r.Index().Each(func(_ blob.ID, l repo.Location) {
		if c.packs[l.Pack] != nil {
			c.sum.Blobs++
		}
	})
}

// addPack merges one index entry; it reports false if the pack holds blobs
// of both types.
func (c *checker) addPack(p repo.IndexPack) bool {
	pi := c.packs[p.ID]
	if pi == nil {
		pi = &packInfo{ns: backend.Data, size: -1}
		if len(p.Blobs) > 0 {
			pi.ns = repo.PackType(p.Blobs[0].Type)
		}
		c.packs[p.ID] = pi
	}
	seen := make(map[blob.ID]bool, len(pi.blobs))
	for _, b := range pi.blobs {
		seen[b.ID] = true
	}
	consistent := true
	for _, b := range p.Blobs {
		if repo.PackType(b.Type) != pi.ns {
			consistent = false
		}
		if seen[b.ID] {
			continue // the same pack listed in two index files
		}
		seen[b.ID] = true
		pi.blobs = append(pi.blobs, b)
		pi.end = max(pi.end, int64(b.Offset)+int64(b.Length))
	}
	return consistent
}

// sortedPacks returns the indexed pack IDs in a stable order.
func (c *checker) sortedPacks() []blob.ID {
	ids := make([]blob.ID, 0, len(c.packs))
	for id := range c.packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b blob.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return ids
}

// checkPacks compares the stored packs with the index.
func (c *checker) checkPacks(ctx context.Context) error {
	stored := map[backend.FileType]map[string]int64{}
	for _, t := range []backend.FileType{backend.Data, backend.Tree} {
		m := map[string]int64{}
		if err := c.r.Raw().List(ctx, t, func(name string, size int64) error {
			if _, err := blob.ParseID(name); err != nil {
				c.sum.UnknownFiles = append(c.sum.UnknownFiles, string(t)+"/"+name)
				return nil
			}
			m[name] = size
			return nil
		}); err != nil {
			return fmt.Errorf("list packs: %w", err)
		}
		stored[t] = m
	}
	for _, id := range c.sortedPacks() {
		pi := c.packs[id]
		h := backend.Handle{Type: pi.ns, Name: id.String()}
		size, ok := stored[pi.ns][h.Name]
		if !ok {
			c.addDamage(Problem{Kind: KindMissingPack, Object: h.String(),
				Err: fmt.Sprintf("pack of %d indexed blobs is not stored", len(pi.blobs))}, id, pi.blobs)
			continue
		}
		delete(stored[pi.ns], h.Name)
		pi.size = size
		if size < pi.end {
			var lost []repo.PackedBlob
			for _, b := range pi.blobs {
				if int64(b.Offset)+int64(b.Length) > size {
					lost = append(lost, b)
				}
			}
			c.addDamage(Problem{Kind: KindSizeMismatch, Object: h.String(),
				Err: fmt.Sprintf("pack is %d bytes, but the index places blobs up to byte %d", size, pi.end)}, id, lost)
		}
	}
	for id := range c.doomed {
		for _, t := range []backend.FileType{backend.Data, backend.Tree} {
			if _, ok := stored[t][id.String()]; ok {
				c.doomed[id] = true
			}
		}
	}
	c.sum.UnreferencedPacks = len(stored[backend.Data]) + len(stored[backend.Tree])
	return nil
}

// listSnapshots lists the snapshot files; not with snapshot.IDs, which
// skips invalid names.
func (c *checker) listSnapshots(ctx context.Context) ([]string, error) {
	var names []string
	if err := c.r.Raw().List(ctx, backend.Snapshot, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// loadSnapshots reads the snapshot records, oldest first.
func (c *checker) loadSnapshots(ctx context.Context, names []string) ([]*snapshot.Snapshot, error) {
	var sns []*snapshot.Snapshot
	for _, name := range names {
		id, err := blob.ParseID(name)
		if err != nil {
			c.sum.UnknownFiles = append(c.sum.UnknownFiles, "snapshots/"+name)
			continue
		}
		plain, err := c.r.LoadUnpackedRaw(ctx, backend.Snapshot, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.problem(Problem{Kind: KindCorruptSnapshot, Object: "snapshot " + id.Short(), Err: err.Error()})
			continue
		}
		sn := &snapshot.Snapshot{ID: id}
		if err := json.Unmarshal(plain, sn); err != nil {
			c.problem(Problem{Kind: KindCorruptSnapshot, Object: "snapshot " + id.Short(), Err: "decode: " + err.Error()})
			continue
		}
		sns = append(sns, sn)
	}
	c.sum.Snapshots = len(sns)
	slices.SortStableFunc(sns, func(a, b *snapshot.Snapshot) int { return a.Time.Compare(b.Time) })
	return sns, nil
}

// selectPacks picks the packs to read from ids, which are sorted.
func selectPacks(ids []blob.ID, opt Options) []blob.ID {
	switch {
	case opt.SubsetT > 0:
		var sel []blob.ID
		for i, id := range ids {
			if i%opt.SubsetT == opt.SubsetN-1 {
				sel = append(sel, id)
			}
		}
		return sel
	case opt.SubsetFraction > 0 && opt.SubsetFraction < 1:
		k := int(math.Ceil(opt.SubsetFraction * float64(len(ids))))
		pick := rand.Perm(len(ids))[:k]
		sort.Ints(pick)
		sel := make([]blob.ID, k)
		for i, j := range pick {
			sel[i] = ids[j]
		}
		return sel
	}
	return ids
}

// readData reads the selected packs, a few at a time: downloads wait on the
// network, decryption on the CPU.
func (c *checker) readData(ctx context.Context) error {
	var sel []blob.ID
	for _, id := range selectPacks(c.sortedPacks(), c.opt) {
		if c.packs[id].size >= 0 { // a missing pack is already reported
			sel = append(sel, id)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan blob.ID)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var fatal error
	for range min(4, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for id := range jobs {
				if err := c.readPack(ctx, id); err != nil {
					errOnce.Do(func() { fatal = err })
					cancel()
				}
			}
		})
	}
feed:
	for _, id := range sel {
		select {
		case jobs <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	return ctx.Err()
}

// readPack verifies one pack against its name and the index. It returns an
// error only when the check must stop.
func (c *checker) readPack(ctx context.Context, id blob.ID) error {
	pi := c.packs[id]
	h := backend.Handle{Type: pi.ns, Name: id.String()}
	data, err := backend.LoadAll(ctx, c.r.Raw(), h)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		kind := KindReadError
		if errors.Is(err, backend.ErrNotFound) {
			kind = KindMissingPack
		}
		c.problem(Problem{Kind: kind, Object: h.String(), Err: err.Error()})
		return nil
	}
	c.mu.Lock()
	c.sum.PacksRead++
	c.sum.BytesRead += int64(len(data))
	c.mu.Unlock()

	if sum := blob.ID(sha256.Sum256(data)); sum != id {
		c.problem(Problem{Kind: KindCorruptPack, Object: h.String(), Err: fmt.Sprintf("content hashes to %s", sum)})
	}
	// Blobs are read where the index places them, as restore would, even if
	// the header is damaged: that names the blobs that are lost.
	if hdr, err := repo.ParsePack(c.r.Key(), data); err != nil {
		c.problem(Problem{Kind: KindCorruptPack, Object: h.String(), Err: err.Error()})
	} else {
		c.compareHeader(h, hdr, pi.blobs)
	}
	for _, b := range pi.blobs {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(data)) {
			if int64(len(data)) == pi.size {
				continue // reported with the pack's size
			}
			c.addDamage(Problem{Kind: KindCorruptBlob, Object: h.String(), Blob: b.ID.String(),
				Err: fmt.Sprintf("blob %s ends at byte %d, beyond the pack's %d bytes", b.ID.Short(), end, len(data))},
				id, []repo.PackedBlob{b})
			continue
		}
		plain, err := c.r.DecodeBlob(data[b.Offset:end], b.ID, b.Type, int(b.RawLen))
		if err != nil {
			c.addDamage(Problem{Kind: KindCorruptBlob, Object: h.String(), Blob: b.ID.String(), Err: err.Error()},
				id, []repo.PackedBlob{b})
			continue
		}
		if len(plain) != int(b.RawLen) {
			c.problem(Problem{Kind: KindIndexMismatch, Object: h.String(), Blob: b.ID.String(),
				Err: fmt.Sprintf("blob %s holds %d bytes, the index says %d", b.ID.Short(), len(plain), b.RawLen)})
		}
	}
	return nil
}

// compareHeader reports where a pack's header and the index disagree.
func (c *checker) compareHeader(h backend.Handle, hdr, indexed []repo.PackedBlob) {
	left := make(map[blob.ID]repo.PackedBlob, len(hdr))
	for _, b := range hdr {
		left[b.ID] = b
	}
	for _, b := range indexed {
		hb, ok := left[b.ID]
		switch {
		case !ok:
			c.problem(Problem{Kind: KindIndexMismatch, Object: h.String(), Blob: b.ID.String(),
				Err: fmt.Sprintf("indexed blob %s is not in the pack header", b.ID.Short())})
		case hb != b:
			c.problem(Problem{Kind: KindIndexMismatch, Object: h.String(), Blob: b.ID.String(),
				Err: fmt.Sprintf("blob %s: pack header has %s, index has %s", b.ID.Short(), describe(hb), describe(b))})
		}
		delete(left, b.ID)
	}
	for _, b := range hdr {
		if _, ok := left[b.ID]; ok {
			c.problem(Problem{Kind: KindIndexMismatch, Object: h.String(), Blob: b.ID.String(),
				Err: fmt.Sprintf("blob %s is in the pack but in no index", b.ID.Short())})
		}
	}
}

func describe(b repo.PackedBlob) string {
	return fmt.Sprintf("%s blob at %d, %d bytes stored, %d raw", b.Type, b.Offset, b.Length, b.RawLen)
}

func describeAgg(a snapshot.Aggregates) string {
	return fmt.Sprintf("%d bytes, %d files, %d dirs, %d other", a.Bytes, a.Files, a.Dirs, a.Other)
}

// checkSnapshot walks one snapshot's trees.
func (c *checker) checkSnapshot(ctx context.Context, sn *snapshot.Snapshot) error {
	obj := "snapshot " + sn.ID.Short()
	if sn.Tree.IsNull() {
		c.problem(Problem{Kind: KindCorruptSnapshot, Object: obj, Err: "snapshot has no root tree"})
		return nil
	}
	agg, ok, err := c.tree(ctx, sn.Tree, "/")
	if err != nil {
		return err
	}
	if ok && agg != sn.Totals {
		c.problem(Problem{Kind: KindAggregateMismatch, Object: obj, Path: "/",
			Err: fmt.Sprintf("snapshot totals are %s, its tree holds %s", describeAgg(sn.Totals), describeAgg(agg))})
	}
	return c.checkLinks(ctx, sn)
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// loadTree reads and decodes tree id from c.treeBE.
func (c *checker) loadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error) {
	plain, err := c.r.LoadBlobVia(ctx, c.treeBE, blob.Tree, id)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	return snapshot.DecodeTree(plain)
}

// tree checks tree id, found at path, and everything below it once. It
// returns the tree's totals and whether it could be read; the error is
// fatal.
func (c *checker) tree(ctx context.Context, id blob.ID, path string) (snapshot.Aggregates, bool, error) {
	if st, seen := c.trees[id]; seen {
		return st.agg, st.ok, nil
	}
	if err := ctx.Err(); err != nil {
		return snapshot.Aggregates{}, false, err
	}
	// Marked before descending so that nothing is visited twice.
	c.trees[id] = treeState{}
	c.sum.Trees++
	if !c.indexed(id, blob.Tree, "tree "+id.Short(), path) {
		return snapshot.Aggregates{}, false, nil
	}
	if c.blame(id, path) {
		// Lost in the repository, whatever a cached copy still holds.
		return snapshot.Aggregates{}, false, nil
	}
	t, err := c.loadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return snapshot.Aggregates{}, false, ctx.Err()
		}
		c.problem(Problem{Kind: KindCorruptTree, Object: "tree " + id.Short(), Path: path, Err: err.Error()})
		return snapshot.Aggregates{}, false, nil
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := join(path, n.Name)
		switch n.Type {
		case snapshot.File:
			c.file(id, n, p)
		case snapshot.Dir:
			agg, ok, err := c.tree(ctx, n.Subtree, p)
			if err != nil {
				return snapshot.Aggregates{}, false, err
			}
			if ok && agg != n.Agg {
				c.problem(Problem{Kind: KindAggregateMismatch, Object: "tree " + n.Subtree.Short(), Path: p,
					Err: fmt.Sprintf("directory entry records %s, its tree holds %s", describeAgg(n.Agg), describeAgg(agg))})
			}
		}
	}
	st := treeState{agg: t.Totals(), ok: true, links: c.treeLinks(t)}
	c.trees[id] = st
	return st.agg, true, nil
}

// file checks that a file's content is indexed and adds up to its size.
func (c *checker) file(tree blob.ID, n *snapshot.Node, path string) {
	var size uint64
	complete := true
	for _, id := range n.Content {
		if !c.indexed(id, blob.Data, "blob "+id.Short(), path) {
			complete = false
			continue
		}
		c.blame(id, path)
		loc, _ := c.lookup(id)
		size += uint64(loc.RawLen)
	}
	if complete && size != n.Size {
		c.problem(Problem{Kind: KindSizeMismatch, Object: "tree " + tree.Short(), Path: path,
			Err: fmt.Sprintf("file size is %d, its content blobs hold %d bytes", n.Size, size)})
	}
}

// lookup finds a blob in the index files read by this check. r.Index()
// may hold more: entries of index files damaged since they were cached. A
// blob only a doomed index file names counts if its pack is stored.
func (c *checker) lookup(id blob.ID) (repo.Location, bool) {
	loc, ok := c.r.Index().Lookup(id)
	switch {
	case !ok:
		return repo.Location{}, false
	case loc.Doomed:
		return loc, c.doomed[loc.Pack]
	case c.packs[loc.Pack] == nil:
		return repo.Location{}, false
	}
	return loc, true
}

// indexed reports whether blob id is in the index as a blob of type t, and
// reports a problem if not.
func (c *checker) indexed(id blob.ID, t blob.Type, obj, path string) bool {
	loc, ok := c.lookup(id)
	switch {
	case !ok && loc.Doomed:
		c.problem(Problem{Kind: KindMissingBlob, Object: obj, Blob: id.String(), Path: path,
			Err: fmt.Sprintf("%s blob %s is only in pack %s, which an unfinished prune was deleting, and that pack is gone", t, id.Short(), loc.Pack.Short())})
		return false
	case !ok:
		c.problem(Problem{Kind: KindMissingBlob, Object: obj, Blob: id.String(), Path: path,
			Err: fmt.Sprintf("%s blob %s is not in the index", t, id.Short())})
		return false
	case loc.Type != t:
		c.problem(Problem{Kind: KindMissingBlob, Object: obj, Blob: id.String(), Path: path,
			Err: fmt.Sprintf("blob %s is a %s blob, not a %s blob", id.Short(), loc.Type, t)})
		return false
	}
	return true
}
