package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Options tune a prune.
type Options struct {
	// MaxUnused is the largest share of a pack's blob bytes that may be
	// unused before the pack is repacked (0.05 for 5%). 1 or more never
	// repacks for unused space.
	MaxUnused float64
	// MaxRepackBytes bounds the bytes of packs read for repacking in one
	// run; 0 means no bound.
	MaxRepackBytes int64
	// RepackSmall also repacks packs under a quarter of the target pack
	// size, when there are at least two of a kind: frequent small backups
	// otherwise leave many small objects.
	RepackSmall bool
	// DryRun only plans.
	DryRun bool
	// Holder is the lock holder ID of this prune (repo.Lock.Holder), which
	// is not waited for.
	Holder string
	// Alive, if set, is asked before the index is replaced and before packs
	// are deleted; an error stops the prune (its lock may look stale to
	// others, who could then start a prune of their own).
	Alive func() error
	// MaxWait bounds the wait for clients that might still use the old
	// index. When it passes, the deletions are left to the next prune.
	MaxWait time.Duration
	// Poll is how often locks are listed while waiting (default 2 s).
	Poll time.Duration
	// Log receives progress messages; nil discards them.
	Log func(format string, args ...any)
}

// Result says what a prune found and did. Byte counts are of stored
// (compressed, encrypted) data.
type Result struct {
	DryRun    bool  `json:"dry_run"`
	Snapshots int   `json:"snapshots"`
	Packs     int   `json:"packs"`
	Bytes     int64 `json:"bytes"`
	// UnusedBytes are the bytes of unused and duplicate blobs before.
	UnusedBytes int64 `json:"unused_bytes"`
	// DeletePacks are packs that hold no used blob.
	DeletePacks int   `json:"delete_packs"`
	DeleteBytes int64 `json:"delete_bytes"`
	// RepackPacks were read to copy their used blobs into new packs.
	RepackPacks int   `json:"repack_packs"`
	RepackBytes int64 `json:"repack_bytes"`
	CopiedBlobs int   `json:"copied_blobs"`
	CopiedBytes int64 `json:"copied_bytes"`
	// Unindexed packs were named by no index file; Reindexed of them held
	// used blobs found nowhere else and were indexed again.
	Unindexed int `json:"unindexed"`
	Reindexed int `json:"reindexed"`
	// MissingPacks are named by the index but not stored; they are
	// dropped from the index (none of their blobs was needed).
	MissingPacks      int `json:"missing_packs"`
	DamagedIndexFiles int `json:"damaged_index_files"`
	IndexFilesRemoved int `json:"index_files_removed"`
	IndexFilesWritten int `json:"index_files_written"`
	// Waited is how long the prune waited for older clients.
	Waited time.Duration `json:"waited_ns"`
	// Resurrected packs were kept because a backup that ran meanwhile
	// uses them.
	Resurrected int `json:"resurrected"`
	// Deferred packs are left for the next prune: clients that may use
	// them were still running when MaxWait passed.
	Deferred []string `json:"deferred,omitempty"`
	// Deleted and FreedBytes count the packs removed.
	Deleted    int   `json:"deleted"`
	FreedBytes int64 `json:"freed_bytes"`
	// RemainingUnused are unused bytes left in kept packs.
	RemainingUnused int64 `json:"remaining_unused"`
}

type action int

const (
	keep action = iota
	remove
	repack
)

// pack is what prune knows of one pack.
type pack struct {
	id   blob.ID
	ns   backend.FileType
	size int64 // stored size; 0 if the pack is missing
	// blobs as the index (or, if unindexed, the header) lists them.
	blobs []repo.PackedBlob
	// usedAt[i] is blobs[i]'s position in the used set, -1 if unused
	// (listPacks fills it, so that each blob is looked up once).
	usedAt  []int32
	indexed bool
	listed  bool
	// reindex is set for an unindexed pack that must be indexed again.
	reindex bool
	// blobBytes sums the blobs' stored lengths; used those homed here.
	blobBytes, used int64
	act             action
}

// lookUp fills usedAt.
func (p *pack) lookUp(u *usedBlobs) {
	p.usedAt = make([]int32, len(p.blobs))
	for j, b := range p.blobs {
		p.usedAt[j] = int32(u.index(b.ID))
	}
}

func (p *pack) handle() backend.Handle { return backend.Handle{Type: p.ns, Name: p.id.String()} }

// participates reports whether the pack can hold used blobs after prune.
func (p *pack) participates() bool { return p.listed && (p.indexed || p.reindex) }

type pruner struct {
	r   *repo.Repository
	opt Options
	res Result

	// used holds every blob a snapshot uses, with the pack chosen to hold
	// it (nil until assignHomes).
	used     usedBlobs
	trees    map[blob.ID]bool
	snaps    map[blob.ID]bool
	packs    map[blob.ID]*pack
	files    map[string]bool // index files read
	oldFiles []string        // index files to replace
	// doomedFiles name the packs this prune deletes; they go last.
	doomedFiles []string
	oldDoomed   bool // an unfinished prune's doomed file is among oldFiles
}

func (p *pruner) logf(format string, args ...any) {
	if p.opt.Log != nil {
		p.opt.Log(format, args...)
	}
}

// Run prunes r. The caller holds a prune lock (repo.LockPrune) whose
// holder ID is in opt.Holder.
func Run(ctx context.Context, r *repo.Repository, opt Options) (Result, error) {
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	p := &pruner{r: r, opt: opt, trees: map[blob.ID]bool{}, snaps: map[blob.ID]bool{},
		packs: map[blob.ID]*pack{}, files: map[string]bool{}}
	p.res.DryRun = opt.DryRun
	// Snapshots are listed before index files: an index file is written
	// before the snapshot that needs it, so the index files listed next
	// name everything these snapshots use, including trees this handle's
	// index (read when the repository was opened) does not have yet.
	ids, err := p.listSnapshots(ctx)
	if err != nil {
		return p.res, err
	}
	if err := p.readIndex(ctx); err != nil {
		return p.res, err
	}
	if err := p.markSnapshots(ctx, ids, nil); err != nil {
		return p.res, err
	}
	p.used.seal()
	if err := p.listPacks(ctx); err != nil {
		return p.res, err
	}
	if err := p.assignHomes(); err != nil {
		return p.res, err
	}
	p.plan()
	if opt.DryRun {
		return p.res, nil
	}
	if err := p.repack(ctx); err != nil {
		return p.res, err
	}
	if err := p.alive(); err != nil {
		return p.res, err
	}
	if err := p.rewriteIndex(ctx); err != nil {
		return p.res, err
	}
	doomed := p.doomed()
	if len(doomed) == 0 {
		return p.res, r.DropIndexTable()
	}
	done, err := p.waitForOlderClients(ctx)
	if err != nil {
		return p.res, err
	}
	if !done {
		for _, pk := range doomed {
			p.res.Deferred = append(p.res.Deferred, pk.id.String())
		}
		return p.res, r.DropIndexTable()
	}
	if err := p.recheck(ctx); err != nil {
		return p.res, err
	}
	if err := p.alive(); err != nil {
		return p.res, err
	}
	if err := p.deletePacks(ctx); err != nil {
		return p.res, err
	}
	return p.res, r.DropIndexTable()
}

func (p *pruner) alive() error {
	if p.opt.Alive == nil {
		return nil
	}
	if err := p.opt.Alive(); err != nil {
		return fmt.Errorf("stopping before deleting anything more: %w", err)
	}
	return nil
}

// listSnapshots lists the snapshots not yet marked. Their trees can only
// be read once the index files listed after this are in the handle's index
// (readIndex, recheck).
func (p *pruner) listSnapshots(ctx context.Context) ([]blob.ID, error) {
	ids, err := snapshot.IDs(ctx, p.r)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ids, func(id blob.ID) bool { return p.snaps[id] }), nil
}

// markSnapshots marks what the snapshots ids use; newly used blobs are
// passed to fresh.
func (p *pruner) markSnapshots(ctx context.Context, ids []blob.ID, fresh func(blob.ID)) error {
	for _, id := range ids {
		if p.snaps[id] {
			continue
		}
		sn, err := snapshot.Load(ctx, p.r, id)
		if err != nil {
			if fresh != nil && errors.Is(err, backend.ErrNotFound) {
				continue // forgotten meanwhile
			}
			return fmt.Errorf("%w: prune must know what every snapshot uses; remove or repair the damaged snapshot record first", err)
		}
		p.snaps[id] = true
		if fresh == nil {
			p.res.Snapshots++
		}
		if err := p.markTree(ctx, sn.Tree, fresh); err != nil {
			return fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
	}
	return nil
}

func (p *pruner) markBlob(id blob.ID, fresh func(blob.ID)) {
	if p.used.mark(id) && fresh != nil {
		fresh(id)
	}
}

func (p *pruner) markTree(ctx context.Context, id blob.ID, fresh func(blob.ID)) error {
	if p.trees[id] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.trees[id] = true
	p.markBlob(id, fresh)
	t, err := snapshot.LoadTree(ctx, p.r, id)
	if err != nil {
		return fmt.Errorf("read tree %s: %w (prune stops: run `tidemark check`)", id.Short(), err)
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		for _, c := range n.Content {
			p.markBlob(c, fresh)
		}
		if n.Type == snapshot.Dir {
			if err := p.markTree(ctx, n.Subtree, fresh); err != nil {
				return err
			}
		}
	}
	return nil
}

// readIndex reads every index file. Damaged ones are replaced: the packs
// they named turn up as unindexed and are indexed again from their headers
// if they hold used blobs. Every pack read is also added to the handle's
// index: files written since the repository was opened hold trees of
// snapshots that markSnapshots and recheck must read.
func (p *pruner) readIndex(ctx context.Context) error {
	names, err := p.r.IndexFiles(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		p.files[n] = true
		p.oldFiles = append(p.oldFiles, n)
		ips, err := p.r.LoadIndexFile(ctx, n)
		if err != nil {
			if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, backend.ErrNotFound) {
				p.logf("index file %s is damaged and will be replaced: %v", n, err)
				p.res.DamagedIndexFiles++
				continue
			}
			return err
		}
		p.r.AddIndexFile(n, ips)
		for _, ip := range ips {
			p.oldDoomed = p.oldDoomed || ip.Doomed
			if _, ok := p.packs[ip.ID]; ok || ip.Doomed {
				// A doomed file of an earlier prune that did not finish:
				// its packs are unindexed now, and judged as such.
				continue
			}
			pk := &pack{id: ip.ID, blobs: ip.Blobs, indexed: true, ns: backend.Data}
			if len(ip.Blobs) > 0 {
				pk.ns = repo.PackType(ip.Blobs[0].Type)
			}
			p.packs[ip.ID] = pk
		}
	}
	return nil
}

// listPacks lists the stored packs and reads the headers of unindexed ones.
func (p *pruner) listPacks(ctx context.Context) error {
	var unindexed []*pack
	for _, ns := range []backend.FileType{backend.Data, backend.Tree} {
		err := p.r.Raw().List(ctx, ns, func(name string, size int64) error {
			id, err := blob.ParseID(name)
			if err != nil {
				return nil // not a pack; check reports it
			}
			pk := p.packs[id]
			if pk == nil {
				pk = &pack{id: id, ns: ns}
				p.packs[id] = pk
				unindexed = append(unindexed, pk)
			}
			pk.listed, pk.size = true, size
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s packs: %w", ns, err)
		}
	}
	// Which used blobs the indexed packs hold, to tell which unindexed
	// packs are needed.
	have := make([]bool, p.used.len())
	for _, pk := range p.packs {
		if !pk.listed && pk.indexed {
			p.res.MissingPacks++
			p.logf("pack %s is in the index but not in the repository", pk.id)
		}
		pk.lookUp(&p.used)
		for j, b := range pk.blobs {
			pk.blobBytes += int64(b.Length)
			if i := pk.usedAt[j]; i >= 0 && pk.participates() {
				have[i] = true
			}
		}
	}
	p.res.Unindexed = len(unindexed)
	for _, pk := range unindexed {
		hdr, err := p.r.LoadPackHeader(ctx, pk.handle(), pk.size)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Nothing can use an unindexed pack with an unreadable header.
			p.logf("unindexed pack %s: %v; it will be deleted", pk.id, err)
			continue
		}
		pk.blobs = hdr
		pk.lookUp(&p.used)
		for j, b := range hdr {
			pk.blobBytes += int64(b.Length)
			if i := pk.usedAt[j]; i >= 0 && !have[i] {
				pk.reindex = true
			}
		}
		if pk.reindex {
			p.res.Reindexed++
			for _, i := range pk.usedAt {
				if i >= 0 {
					have[i] = true
				}
			}
		}
	}
	return nil
}

// assignHomes gives each used blob one pack, preferring packs that are
// mostly used (they are kept as they are), and fails if a used blob is in
// no stored pack.
func (p *pruner) assignHomes() error {
	var order []*pack
	rawUsed := map[*pack]int64{}
	for _, pk := range p.packs {
		p.res.Packs++
		p.res.Bytes += pk.size
		if !pk.participates() {
			continue
		}
		for j, b := range pk.blobs {
			if pk.usedAt[j] >= 0 {
				rawUsed[pk] += int64(b.Length)
			}
		}
		order = append(order, pk)
	}
	share := func(pk *pack) float64 {
		if pk.blobBytes == 0 {
			return 0
		}
		return float64(rawUsed[pk]) / float64(pk.blobBytes)
	}
	sort.Slice(order, func(i, j int) bool {
		if si, sj := share(order[i]), share(order[j]); si != sj {
			return si > sj
		}
		return order[i].id.String() < order[j].id.String()
	})
	for _, pk := range order {
		for j, b := range pk.blobs {
			if i := pk.usedAt[j]; i >= 0 && p.used.homes[i] == nil {
				p.used.homes[i] = pk
				pk.used += int64(b.Length)
			}
		}
	}
	var missing []string
	for i, home := range p.used.homes {
		if home == nil {
			missing = append(missing, p.used.ids[i].Short())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%d blobs that snapshots use are in no pack (%s); prune stops without changing anything: run `tidemark check`, then `tidemark repair snapshots`",
			len(missing), strings.Join(missing[:min(len(missing), 5)], ", "))
	}
	return nil
}

// plan decides each pack's fate.
func (p *pruner) plan() {
	type cand struct {
		pk     *pack
		unused int64
		small  bool
	}
	var cands []cand
	small := map[backend.FileType]int{}
	smallSize := int64(p.r.Config().PackSize / 4)
	for _, pk := range p.packs {
		if !pk.listed {
			continue // missing: dropped from the index
		}
		unused := pk.blobBytes - pk.used
		p.res.UnusedBytes += unused
		switch {
		case !pk.participates() || pk.used == 0:
			pk.act = remove
			p.res.DeletePacks++
			p.res.DeleteBytes += pk.size
		case float64(unused) > p.opt.MaxUnused*float64(pk.blobBytes):
			cands = append(cands, cand{pk: pk, unused: unused})
		case p.opt.RepackSmall && pk.size < smallSize:
			cands = append(cands, cand{pk: pk, unused: unused, small: true})
			small[pk.ns]++
		}
	}
	// Most unused space first; small packs last, and only where there are
	// several to combine.
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.small != b.small {
			return !a.small
		}
		if a.unused != b.unused {
			return a.unused > b.unused
		}
		return a.pk.id.String() < b.pk.id.String()
	})
	var budget int64
	for _, c := range cands {
		if c.small && small[c.pk.ns] < 2 {
			continue
		}
		if p.opt.MaxRepackBytes > 0 && budget+c.pk.size > p.opt.MaxRepackBytes {
			continue
		}
		budget += c.pk.size
		c.pk.act = repack
		p.res.RepackPacks++
		p.res.RepackBytes += c.pk.size
	}
	for _, pk := range p.packs {
		if pk.act == keep && pk.listed {
			p.res.RemainingUnused += pk.blobBytes - pk.used
		}
	}
}

// repack copies the used blobs of the packs to repack into new packs and
// indexes those. Each blob is authenticated first: a damaged one stops the
// prune before anything is deleted.
func (p *pruner) repack(ctx context.Context) error {
	var todo []*pack
	for _, pk := range p.packs {
		if pk.act == repack {
			todo = append(todo, pk)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].id.String() < todo[j].id.String() })
	p.logf("repacking %d packs", len(todo))
	for _, pk := range todo {
		data, err := backend.LoadAll(ctx, p.r.Raw(), pk.handle())
		if err != nil {
			return fmt.Errorf("repack: read pack %s: %w", pk.id, err)
		}
		for _, b := range pk.blobs {
			if i := p.used.index(b.ID); i < 0 || p.used.homes[i] != pk {
				continue
			}
			end := int64(b.Offset) + int64(b.Length)
			if end > int64(len(data)) {
				return fmt.Errorf("repack: pack %s: blob %s lies beyond the pack's %d bytes: %w (prune stops; run `tidemark check --read-data`)",
					pk.id, b.ID.Short(), len(data), repo.ErrCorrupt)
			}
			sealed := data[b.Offset:end]
			if _, err := p.r.DecodeBlob(sealed, b.ID, b.Type, int(b.RawLen)); err != nil {
				return fmt.Errorf("repack: pack %s: %w (prune stops; run `tidemark check --read-data`)", pk.id, err)
			}
			if err := p.r.CopyBlob(ctx, b.Type, b.ID, sealed, int(b.RawLen)); err != nil {
				return fmt.Errorf("repack: %w", err)
			}
			p.res.CopiedBlobs++
			p.res.CopiedBytes += int64(b.Length)
		}
	}
	if err := p.r.Flush(ctx); err != nil {
		return fmt.Errorf("repack: store packs: %w", err)
	}
	// The handle's own index files must not be taken for other clients'
	// in recheck (listing them here could also catch those).
	for _, n := range p.r.WrittenIndexFiles() {
		p.files[n] = true
	}
	return nil
}

// rewriteIndex writes a doomed index file naming the packs to delete, so
// that whatever a concurrent backup makes use of stays readable until the
// prune keeps it, then index files for every pack that stays, then removes
// the old index files. Nothing is lost if it is killed in between: the
// packs that stay are then named twice.
func (p *pruner) rewriteIndex(ctx context.Context) error {
	var doomed []repo.IndexPack
	for _, pk := range p.doomed() {
		if len(pk.blobs) > 0 {
			doomed = append(doomed, repo.IndexPack{ID: pk.id, Blobs: pk.blobs})
		}
	}
	names, err := p.r.SaveIndexFiles(ctx, doomed, true)
	if err != nil {
		return err
	}
	p.doomedFiles = names
	for _, n := range names {
		p.files[n] = true
	}
	var stay []repo.IndexPack
	changed := p.res.DamagedIndexFiles > 0 || p.res.MissingPacks > 0 || p.res.Reindexed > 0 || p.oldDoomed
	for _, pk := range p.packs {
		switch {
		case pk.act == keep && pk.listed && pk.participates():
			stay = append(stay, repo.IndexPack{ID: pk.id, Blobs: pk.blobs})
		case pk.indexed:
			changed = true
		}
	}
	if !changed && len(p.oldFiles) <= 1 {
		return nil
	}
	sort.Slice(stay, func(i, j int) bool { return stay[i].ID.String() < stay[j].ID.String() })
	names, err = p.r.SaveIndexFiles(ctx, stay, false)
	if err != nil {
		return err
	}
	for _, n := range names {
		p.files[n] = true
	}
	p.res.IndexFilesWritten = len(names)
	for _, n := range p.oldFiles {
		if err := p.r.Backend().Remove(ctx, backend.Handle{Type: backend.Index, Name: n}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("remove old index file %s: %w", n, err)
		}
		p.res.IndexFilesRemoved++
	}
	return nil
}

// doomed returns the packs to delete.
func (p *pruner) doomed() []*pack {
	var out []*pack
	for _, pk := range p.packs {
		if pk.listed && (pk.act == remove || pk.act == repack) {
			out = append(out, pk)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.String() < out[j].id.String() })
	return out
}

// waitForOlderClients waits until every client that held a lock when the
// old index files were gone has released it. It reports false if MaxWait
// passed first.
func (p *pruner) waitForOlderClients(ctx context.Context) (bool, error) {
	start := time.Now()
	defer func() { p.res.Waited = time.Since(start) }()
	holders := func() (map[string]repo.LockInfo, error) {
		locks, err := p.r.Locks(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]repo.LockInfo{}
		now := time.Now()
		for name, l := range locks {
			if l.Stale(now) {
				continue
			}
			id := l.Holder
			if id == "" {
				id = "lock " + name // written by a version without holder IDs
			}
			if id != p.opt.Holder {
				out[id] = l
			}
		}
		return out, nil
	}
	waiting, err := holders()
	if err != nil {
		return false, err
	}
	logged := false
	for len(waiting) > 0 {
		if time.Since(start) > p.opt.MaxWait {
			var who []string
			for _, l := range waiting {
				who = append(who, fmt.Sprintf("%s (pid %d on %s)", l.Command, l.PID, l.Host))
			}
			sort.Strings(who)
			p.logf("still running after %s: %s; deletion is left to the next prune", p.opt.MaxWait, strings.Join(who, ", "))
			return false, nil
		}
		if !logged {
			p.logf("waiting for %d clients that started before the index was replaced", len(waiting))
			logged = true
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(p.opt.Poll):
		}
		live, err := holders()
		if err != nil {
			return false, err
		}
		for id := range waiting {
			if _, ok := live[id]; !ok {
				delete(waiting, id)
			}
		}
	}
	return true, nil
}

// recheck reads what clients added while the prune ran: packs named by new
// index files are kept, and so are packs holding blobs that new snapshots
// use and no surviving pack holds.
func (p *pruner) recheck(ctx context.Context) error {
	// Snapshots first, as in Run: a client that is not waited for (it
	// locked after the index was replaced) may write an index file and a
	// snapshot at any moment, and the snapshot must not be seen without the
	// index file holding its trees.
	ids, err := p.listSnapshots(ctx)
	if err != nil {
		return err
	}
	names, err := p.r.IndexFiles(ctx)
	if err != nil {
		return err
	}
	var resurrect []*pack
	for _, n := range names {
		if p.files[n] {
			continue
		}
		p.files[n] = true
		ips, err := p.r.LoadIndexFile(ctx, n)
		if err != nil {
			return fmt.Errorf("read index file %s written meanwhile: %w", n, err)
		}
		// New snapshots' trees may be in these packs.
		p.r.AddIndexFile(n, ips)
		for _, ip := range ips {
			pk := p.packs[ip.ID]
			if pk == nil {
				pk = &pack{id: ip.ID, blobs: ip.Blobs, listed: true, ns: backend.Data}
				if len(ip.Blobs) > 0 {
					pk.ns = repo.PackType(ip.Blobs[0].Type)
				}
				p.packs[ip.ID] = pk
			}
			// Already in an index file: kept without writing one.
			if pk.act != keep {
				p.logf("pack %s was indexed by another client meanwhile; it stays", pk.id)
				pk.act = keep
			}
			pk.indexed = true
		}
	}
	var fresh []blob.ID
	if err := p.markSnapshots(ctx, ids, func(id blob.ID) { fresh = append(fresh, id) }); err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	// Which packs hold the fresh blobs (only those: the repository's
	// blobs would not all fit in memory twice).
	where := make(map[blob.ID][]*pack, len(fresh))
	for _, id := range fresh {
		where[id] = nil
	}
	for _, pk := range p.packs {
		if !pk.listed {
			continue
		}
		for _, b := range pk.blobs {
			if in, ok := where[b.ID]; ok {
				where[b.ID] = append(in, pk)
			}
		}
	}
	for _, id := range fresh {
		var doomed *pack
		safe := false
		for _, pk := range where[id] {
			if pk.act == keep && pk.participates() {
				safe = true
				break
			}
			doomed = pk
		}
		if safe {
			continue
		}
		if doomed == nil {
			p.logf("warning: blob %s, used by a snapshot written meanwhile, is in no pack", id.Short())
			continue
		}
		doomed.act, doomed.reindex = keep, true
		resurrect = append(resurrect, doomed)
	}
	if len(resurrect) == 0 {
		return nil
	}
	var ips []repo.IndexPack
	seen := map[*pack]bool{}
	for _, pk := range resurrect {
		if !seen[pk] {
			seen[pk] = true
			ips = append(ips, repo.IndexPack{ID: pk.id, Blobs: pk.blobs})
		}
	}
	p.res.Resurrected = len(ips)
	p.logf("keeping %d packs that a backup written meanwhile uses", len(ips))
	if _, err := p.r.SaveIndexFiles(ctx, ips, false); err != nil {
		return fmt.Errorf("index packs a new snapshot uses: %w", err)
	}
	return nil
}

// deletePacks deletes the doomed packs, then the doomed index files that
// named them.
func (p *pruner) deletePacks(ctx context.Context) error {
	for _, pk := range p.doomed() {
		if err := p.r.Backend().Remove(ctx, pk.handle()); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("delete pack %s: %w", pk.id, err)
		}
		p.res.Deleted++
		p.res.FreedBytes += pk.size
	}
	for _, n := range p.doomedFiles {
		if err := p.r.Backend().Remove(ctx, backend.Handle{Type: backend.Index, Name: n}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("remove doomed index file %s: %w", n, err)
		}
	}
	return nil
}
