package repo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/chunker"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/keycache"
)

// ErrNoRepository is returned when the location holds no repository.
var ErrNoRepository = errors.New("no repository at this location")

// Version is the repository format version this code writes.
const Version = 1

// DefaultPackSize is the target size of pack files: large enough that
// object stores see few requests, small enough to repack cheaply.
const DefaultPackSize = 16 << 20

// Config is stored (encrypted) in the repository's config object.
type Config struct {
	Version  int            `json:"version"`
	ID       string         `json:"id"`
	Created  time.Time      `json:"created"`
	Chunker  chunker.Params `json:"chunker"`
	PackSize int            `json:"pack_size"`
}

// Options tune a repository handle; the zero value is usable.
type Options struct {
	// Compression selects the zstd level for data blobs ("off", "fastest",
	// "default", "better"); trees always use "default".
	Compression string
	// KDF overrides the argon2 parameters for new keys (tests only).
	KDF func() (crypto.KDFParams, error)
	// KeyCache keeps the unlocked key in the kernel keyring for a while
	// (see package keycache), so frequent backups skip the password
	// derivation.
	KeyCache bool
	// CacheDir, when set, names the local cache directory of a repository
	// (by its ID). It holds copies of trees, index files and snapshots
	// (see package cache) and the index table; Raw still reads around it.
	CacheDir func(repoID string) (string, error)

	// mergeFiles and mergeBlobs override the index table's merge
	// thresholds, indexBlobs and mergeDuring the blobs per index file and
	// the in-memory blobs merged while a backup runs, loadMerge the blobs
	// read at open before a merge (tests only).
	mergeFiles, mergeBlobs  int
	indexBlobs, mergeDuring int
	loadMerge               int
}

// Repository is an open repository.
type Repository struct {
	raw    backend.Backend
	be     backend.Backend
	key    *crypto.Key
	keyID  string
	cfg    Config
	chunks *chunker.Table
	data   *codec
	trees  *codec
	noComp bool
	idx    *Index
	// cacheDir is the local cache directory, "" without a cache.
	cacheDir                string
	mergeFiles, mergeBlobs  int
	indexBlobs, mergeDuring int
	loadMerge               int
	// merged are the index files in the index table; unmerged those whose
	// blobs are only in memory (read at open, or written by this handle).
	merged   map[string]bool
	unmerged []string
	// gone are index files the cache knew that are no longer listed.
	gone []string
	// shrunkAt is when this handle found index files gone (see
	// noteShrink), for when the cache could not take the note.
	shrunkAt time.Time
	// indexErrs lists index files that could not be used.
	indexErrs []error

	mu       sync.Mutex
	pending  map[blob.ID]struct{}
	packers  map[blob.Type]*packer
	newPacks []IndexPack
	newBlobs int // blobs in newPacks
	// indexing are packs taken from newPacks whose index file is being
	// written: like newPacks, no index file names them yet.
	indexing map[blob.ID]bool
	// written names the index files this handle wrote.
	written []string
	noMerge bool
	err     error

	uploads     sync.WaitGroup
	uploadSlots chan struct{}
	indexMu     sync.Mutex
	// mergeMu keeps index table merges one at a time.
	mergeMu sync.Mutex

	bufs sync.Pool // *[]byte scratch buffers for compressed and sealed blobs

	packBytes atomic.Int64
	blobBytes atomic.Int64

	// keyDesc names keyID's entry in the kernel key cache (see ChangePassword).
	keyDesc string
	// kdf overrides the argon2 parameters of keys added later (tests only).
	kdf kdfParamsFunc
}

func levelOf(name string) (zstd.EncoderLevel, bool, error) {
	switch name {
	case "", "default", "auto":
		return zstd.SpeedDefault, false, nil
	case "fastest":
		return zstd.SpeedFastest, false, nil
	case "better":
		return zstd.SpeedBetterCompression, false, nil
	case "off":
		return zstd.SpeedFastest, true, nil
	}
	return 0, false, fmt.Errorf("invalid compression %q (want off, fastest, default or better)", name)
}

// Init creates a new repository in be with a first key for password.
func Init(ctx context.Context, be backend.Backend, password []byte, opt Options) (*Repository, error) {
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.Config}); err == nil {
		return nil, fmt.Errorf("init %s: a repository already exists there", be.Location())
	}
	master, err := crypto.NewRandomKey()
	if err != nil {
		return nil, err
	}
	kdf := opt.KDF
	if kdf == nil {
		kdf = crypto.DefaultKDFParams
	}
	keyID, err := writeKey(ctx, be, master, password, kdf)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	var rid [16]byte
	if _, err := rand.Read(rid[:]); err != nil {
		return nil, err
	}
	cfg := Config{Version: Version, ID: hex.EncodeToString(rid[:]), Created: time.Now().UTC(),
		Chunker: chunker.DefaultParams, PackSize: DefaultPackSize}
	buf, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, master, keyID, cfg, opt)
	if err != nil {
		return nil, err
	}
	sealed := master.Seal(nil, r.trees.pack(nil, buf, false))
	if err := be.Save(ctx, backend.Handle{Type: backend.Config}, sealed); err != nil {
		return nil, fmt.Errorf("init %s: save config: %w", be.Location(), err)
	}
	return r, nil
}

// Open opens an existing repository and loads its index.
func Open(ctx context.Context, be backend.Backend, password []byte, opt Options) (*Repository, error) {
	sealed, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.Config})
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("open %s: %w", be.Location(), ErrNoRepository)
		}
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	master, keyID, desc, cached, err := openKey(ctx, be, password, opt.KeyCache)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	plain, err := master.Open(nil, sealed)
	if err != nil && cached {
		// A stale cache entry (the key was replaced): derive it afresh.
		keycache.Forget(desc)
		if master, keyID, desc, _, err = openKey(ctx, be, password, false); err != nil {
			return nil, fmt.Errorf("open %s: %w", be.Location(), err)
		}
		cached = false
		plain, err = master.Open(nil, sealed)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: config: %w", be.Location(), err)
	}
	if opt.KeyCache && !cached {
		if buf, err := json.Marshal(master); err == nil {
			keycache.Put(desc, buf)
		}
	}
	c := newCodec(zstd.SpeedDefault)
	raw, err := c.unpack(nil, plain, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: config: %w", be.Location(), err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("open %s: config: %v: %w", be.Location(), err, ErrCorrupt)
	}
	if cfg.Version != Version {
		return nil, fmt.Errorf("open %s: repository format version %d is not supported by this program (version %d)", be.Location(), cfg.Version, Version)
	}
	r, err := newRepository(be, master, keyID, cfg, opt)
	if err != nil {
		return nil, err
	}
	r.keyDesc = desc
	if err := r.loadIndex(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func newRepository(be backend.Backend, key *crypto.Key, keyID string, cfg Config, opt Options) (*Repository, error) {
	level, off, err := levelOf(opt.Compression)
	if err != nil {
		return nil, err
	}
	table, err := chunker.NewTable(key.ChunkerSeed, cfg.Chunker)
	if err != nil {
		return nil, fmt.Errorf("repository config: %w", err)
	}
	if cfg.PackSize < 1<<20 || cfg.PackSize > 1<<30 {
		return nil, fmt.Errorf("repository config: pack size %d out of range: %w", cfg.PackSize, ErrCorrupt)
	}
	r := &Repository{raw: be, be: be, key: key, keyID: keyID, cfg: cfg, chunks: table,
		data: newCodec(level), trees: newCodec(zstd.SpeedDefault), noComp: off, idx: newIndex(),
		pending: map[blob.ID]struct{}{}, packers: map[blob.Type]*packer{},
		uploadSlots: make(chan struct{}, 2), mergeFiles: mergeFiles, mergeBlobs: mergeBlobs, merged: map[string]bool{}}
	if opt.mergeFiles > 0 {
		r.mergeFiles, r.mergeBlobs = opt.mergeFiles, opt.mergeBlobs
	}
	r.indexBlobs, r.mergeDuring, r.loadMerge = indexFileBlobs, mergeEvery, loadMergeBlobs
	if opt.loadMerge > 0 {
		r.loadMerge = opt.loadMerge
	}
	if opt.indexBlobs > 0 {
		r.indexBlobs, r.mergeDuring = opt.indexBlobs, opt.mergeDuring
	}
	r.kdf = opt.KDF
	r.bufs.New = func() any { b := make([]byte, 0, 1<<20); return &b }
	if opt.CacheDir != nil {
		dir, err := opt.CacheDir(cfg.ID)
		if err != nil {
			return nil, err
		}
		cached, err := cache.Wrap(be, dir)
		if err != nil {
			return nil, err
		}
		r.be, r.cacheDir = cached, dir
	}
	return r, nil
}

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// Key returns the master key.
func (r *Repository) Key() *crypto.Key { return r.key }

// KeyID names the key file that opened the repository.
func (r *Repository) KeyID() string { return r.keyID }

// Chunker returns the repository's chunker table.
func (r *Repository) Chunker() *chunker.Table { return r.chunks }

// Index returns the in-memory index.
func (r *Repository) Index() *Index { return r.idx }

// Backend returns the (possibly cached) backend.
func (r *Repository) Backend() backend.Backend { return r.be }

// Raw returns the backend without the local cache.
func (r *Repository) Raw() backend.Backend { return r.raw }

// AddedBytes returns the bytes of packs uploaded and of blob plaintext
// newly stored by this handle.
func (r *Repository) AddedBytes() (packed, plain int64) {
	return r.packBytes.Load(), r.blobBytes.Load()
}

// Thresholds for merging freshly read index files into the cache's index
// table: below them, reading the few new files at each open is cheaper
// than rewriting the table.
const (
	mergeFiles = 16
	mergeBlobs = 20000
)

// indexFileBlobs is the most blobs a backup's index file holds.
const indexFileBlobs = 20000

// indexListings bounds how often loadIndex lists the index files when
// listed ones keep disappearing before they are read.
const indexListings = 5

// loadIndex makes every index file's blobs findable: from the cache's
// index table where it has them, reading only the index files added since
// it was written.
//
// A listed index file that is gone when it is read was removed by a prune,
// which writes the files replacing it before it removes any: listing again
// finds those. Going on without the file instead could leave out blobs
// that only its replacement (not yet listed) names.
func (r *Repository) loadIndex(ctx context.Context) error {
	for listing := 1; ; listing++ {
		names, err := r.IndexFiles(ctx)
		if err != nil {
			return err
		}
		err = r.loadIndexFiles(ctx, names)
		if err == nil || !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		if listing == indexListings {
			return fmt.Errorf("index files kept disappearing while being read (%d listings): %w", listing, err)
		}
		if err := r.resetIndex(); err != nil {
			return err
		}
	}
}

// resetIndex forgets every index file read, to read them all again.
func (r *Repository) resetIndex() error {
	if err := r.idx.reset(); err != nil {
		return err
	}
	r.mu.Lock()
	r.merged, r.unmerged, r.indexErrs = map[string]bool{}, nil, nil
	r.mu.Unlock()
	return nil
}

// loadIndexFiles is loadIndex with the index files already listed.
func (r *Repository) loadIndexFiles(ctx context.Context, names []string) error {
	merged := map[string]bool{}
	if r.cacheDir != "" {
		listed := make(map[string]bool, len(names))
		for _, n := range names {
			listed[n] = true
		}
		// A damaged table is only a cache: it is rebuilt below.
		t, _ := openTable(tableFile(r.cacheDir))
		if t != nil {
			merged = t.nameSet()
		}
		if err := r.findGone(merged, listed); err != nil {
			if t != nil {
				t.close()
			}
			return err
		}
		if t != nil {
			for n := range merged {
				if !listed[n] {
					// An index file was removed (prune, repair): the table
					// may name packs that are gone, so start over.
					t.close()
					t, merged = nil, map[string]bool{}
					break
				}
			}
		}
		if t != nil {
			r.idx.setBase(t)
		}
	}
	r.merged = merged
	for _, n := range names {
		if merged[n] {
			continue
		}
		packs, err := r.LoadIndexFile(ctx, n)
		if err != nil {
			// A damaged index file must not make the repository unusable:
			// its blobs count as absent (a backup stores them again, check
			// and restore name what is affected).
			if errors.Is(err, ErrCorrupt) || errors.Is(err, crypto.ErrUnauthenticated) {
				r.indexErrs = append(r.indexErrs, err)
				continue
			}
			return err
		}
		doomed := false
		for _, p := range packs {
			doomed = doomed || p.Doomed
			r.idx.add(p)
		}
		// A doomed file is read at every open, never merged into the
		// table, which cannot tell its blobs apart.
		if !doomed {
			r.unmerged = append(r.unmerged, n)
		}
		// Reading many index files (a new cache, the first open after a
		// prune) merges as it goes, so that memory holds a bounded number
		// of blobs, not the repository's.
		if m, _ := r.idx.overlayLen(); m >= r.loadMerge {
			r.mergeTable()
		}
	}
	r.maybeMergeTable()
	return nil
}

// AddIndexFile adds the packs of index file name, read by the caller, to
// the handle's index, unless the index holds that file already (merged
// into the table, or read at open): prune and check read every index file
// of the repository, and adding what the table has would put the whole
// repository in memory.
func (r *Repository) AddIndexFile(name string, packs []IndexPack) {
	r.mu.Lock()
	have := r.merged[name] || slices.Contains(r.unmerged, name)
	r.mu.Unlock()
	if have {
		return
	}
	for _, p := range packs {
		r.idx.Add(p)
	}
}

// loadMergeBlobs is how many blobs read from index files an open holds in
// memory before it merges them into the index table (about 27 MB).
const loadMergeBlobs = 250000

// maybeMergeTable writes a new index table holding the in-memory blobs
// too, once there are enough of them. It is called after loading (blobs
// read from new index files) and on Close (blobs this handle stored), but
// only when every in-memory blob is in an index file that exists: a table
// must never claim a blob whose pack no index names, or a later backup
// would reference data that prune may delete.
func (r *Repository) maybeMergeTable() {
	if n, _ := r.idx.overlayLen(); len(r.unmerged) <= r.mergeFiles && n <= r.mergeBlobs {
		return
	}
	r.mergeTable()
}

// mergeTable writes a new index table holding the in-memory blobs too
// (see maybeMergeTable for when that is allowed).
func (r *Repository) mergeTable() {
	r.mu.Lock()
	noMerge := r.noMerge
	r.mu.Unlock()
	if _, mergeable := r.idx.overlayLen(); noMerge || r.cacheDir == "" || !mergeable {
		return
	}
	names := append([]string(nil), r.unmerged...)
	for n := range r.merged {
		names = append(names, n)
	}
	// Failing to write the table (full disk, read-only cache) only costs
	// the next open the same reading again.
	if err := writeTable(tableFile(r.cacheDir), r.idx.base, r.idx.overlay(), names); err != nil {
		return
	}
	if t, err := openTable(tableFile(r.cacheDir)); err == nil && t != nil {
		r.idx.setBase(t)
		for _, n := range r.unmerged {
			r.merged[n] = true
		}
		r.unmerged = nil
	}
}

// markIndexing notes packs whose index file is about to be written. r.mu
// must be held.
func (r *Repository) markIndexing(packs []IndexPack) {
	if r.indexing == nil {
		r.indexing = map[blob.ID]bool{}
	}
	for _, p := range packs {
		r.indexing[p.ID] = true
	}
}

// mergeEvery is the fewest in-memory blobs that make a backup merge them
// into the index table while it runs; a table of more than eight times as
// many waits for an eighth of its size, so that rewriting it costs a
// bounded share of the backup.
const mergeEvery = 150000

// wantMerge reports whether enough blobs are in memory for a merge.
func (r *Repository) wantMerge() bool {
	if r.cacheDir == "" {
		return false
	}
	n, mergeable := r.idx.overlayLen()
	r.mu.Lock()
	noMerge := r.noMerge
	r.mu.Unlock()
	return !noMerge && mergeable && n >= max(r.mergeDuring, r.idx.baseLen()/8)
}

// mergeDuringBackup moves the in-memory index entries whose index files
// are written into a new index table while a backup runs, so that memory
// does not grow with the number of blobs the backup adds (a backup of a
// million small files adds a million). Entries of packs whose index file
// is not written yet stay in memory: a table must never claim a blob no
// index file names. Failing only keeps them in memory.
func (r *Repository) mergeDuringBackup() {
	if !r.mergeMu.TryLock() {
		return // one is under way; the next index file asks again
	}
	defer r.mergeMu.Unlock()
	if !r.wantMerge() {
		return
	}
	r.mu.Lock()
	pending := map[blob.ID]bool{}
	for _, p := range r.newPacks {
		pending[p.ID] = true
	}
	for id := range r.indexing {
		pending[id] = true
	}
	names := append([]string(nil), r.unmerged...)
	for n := range r.merged {
		names = append(names, n)
	}
	r.mu.Unlock()
	extra := r.idx.overlayExcept(pending)
	if err := writeTable(tableFile(r.cacheDir), r.idx.baseTable(), extra, names); err != nil {
		return
	}
	t, err := openTable(tableFile(r.cacheDir))
	if err != nil || t == nil {
		return
	}
	r.idx.setBaseWith(t, extra)
	r.mu.Lock()
	for _, n := range names {
		r.merged[n] = true
	}
	r.unmerged = slices.DeleteFunc(r.unmerged, func(n string) bool { return r.merged[n] })
	r.mu.Unlock()
}

// revalidateIndex reads the index again if an index file this handle
// read is gone: a prune replaced it, and the packs it named may be about
// to be deleted.
func (r *Repository) revalidateIndex(ctx context.Context) error {
	names, err := r.IndexFiles(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
	}
	r.mu.Lock()
	stale := false
	for n := range r.merged {
		stale = stale || !listed[n]
	}
	for _, n := range r.unmerged {
		stale = stale || !listed[n]
	}
	r.mu.Unlock()
	if !stale {
		return nil
	}
	if err := r.resetIndex(); err != nil {
		return err
	}
	// Listed again: the prune may still be removing the files just listed.
	if err := r.loadIndex(ctx); err != nil {
		return fmt.Errorf("read index again after a prune: %w", err)
	}
	return nil
}

// IndexFiles lists the names of all index files. Names that are not IDs
// are no index files of ours (check names them) and are left out.
func (r *Repository) IndexFiles(ctx context.Context) ([]string, error) {
	var names []string
	if err := r.be.List(ctx, backend.Index, func(n string, _ int64) error {
		if _, err := blob.ParseID(n); err == nil {
			names = append(names, n)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	return names, nil
}

// IndexErrors returns the damaged index files skipped when opening.
func (r *Repository) IndexErrors() []error { return r.indexErrs }

// LoadIndexFile reads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, name string) ([]IndexPack, error) {
	plain, err := r.LoadUnpacked(ctx, backend.Index, name)
	if err != nil {
		return nil, err
	}
	packs, err := DecodeIndex(plain)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", name, err)
	}
	return packs, nil
}

// SaveUnpacked stores a small object (snapshot, index) and returns its name.
func (r *Repository) SaveUnpacked(ctx context.Context, t backend.FileType, plaintext []byte) (blob.ID, error) {
	return r.saveUnpackedTo(ctx, r.be, t, plaintext)
}

func (r *Repository) saveUnpackedTo(ctx context.Context, be backend.Backend, t backend.FileType, plaintext []byte) (blob.ID, error) {
	sealed := r.key.Seal(nil, r.trees.pack(nil, plaintext, true))
	id := blob.ID(sha256.Sum256(sealed))
	if err := be.Save(ctx, backend.Handle{Type: t, Name: id.String()}, sealed); err != nil && !errors.Is(err, backend.ErrExists) {
		return id, err
	}
	return id, nil
}

// LoadUnpacked reads, verifies and decrypts a small object.
func (r *Repository) LoadUnpacked(ctx context.Context, t backend.FileType, name string) ([]byte, error) {
	h := backend.Handle{Type: t, Name: name}
	plain, err := r.loadUnpacked(ctx, r.be, h)
	if err != nil && r.be != r.raw && !errors.Is(err, backend.ErrNotFound) {
		evict(r.be, h)
		plain, err = r.loadUnpacked(ctx, r.raw, h)
	}
	return plain, err
}

// LoadUnpackedRaw is LoadUnpacked without the local cache, for check: a
// good cached copy must not hide a damaged stored object.
func (r *Repository) LoadUnpackedRaw(ctx context.Context, t backend.FileType, name string) ([]byte, error) {
	return r.loadUnpacked(ctx, r.raw, backend.Handle{Type: t, Name: name})
}

func (r *Repository) loadUnpacked(ctx context.Context, be backend.Backend, h backend.Handle) ([]byte, error) {
	sealed, err := backend.LoadAll(ctx, be, h)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(sealed); hex.EncodeToString(sum[:]) != h.Name {
		return nil, fmt.Errorf("%s: content does not match its name: %w", h, ErrCorrupt)
	}
	packed, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", h, err, ErrCorrupt)
	}
	plain, err := r.trees.unpack(nil, packed, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h, err)
	}
	return plain, nil
}

// evicter is implemented by caching backends.
type evicter interface{ Evict(backend.Handle) }

func evict(be backend.Backend, h backend.Handle) {
	if e, ok := be.(evicter); ok {
		e.Evict(h)
	}
}

// PackType returns the backend namespace holding packs of blob type t.
func PackType(t blob.Type) backend.FileType {
	if t == blob.Tree {
		return backend.Tree
	}
	return backend.Data
}

// LoadBlob reads, authenticates, decompresses and verifies one blob.
func (r *Repository) LoadBlob(ctx context.Context, t blob.Type, id blob.ID) ([]byte, error) {
	loc, ok := r.idx.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("%s blob %s is not in the index: %w", t, id.Short(), backend.ErrNotFound)
	}
	if loc.Type != t {
		return nil, fmt.Errorf("blob %s is a %s blob, not %s: %w", id.Short(), loc.Type, t, ErrCorrupt)
	}
	h := backend.Handle{Type: PackType(t), Name: loc.Pack.String()}
	plain, err := r.loadBlobFrom(ctx, r.be, h, id, loc)
	if err != nil && r.be != r.raw && !errors.Is(err, context.Canceled) {
		evict(r.be, h)
		plain, err = r.loadBlobFrom(ctx, r.raw, h, id, loc)
	}
	return plain, err
}

// LoadBlobVia is LoadBlob reading the blob's pack through be instead of the
// repository's (cached) backend: check reads trees from the repository
// itself, through a cache of its own, so an intact cached copy cannot hide
// a damaged stored one.
func (r *Repository) LoadBlobVia(ctx context.Context, be backend.Backend, t blob.Type, id blob.ID) ([]byte, error) {
	loc, ok := r.idx.Lookup(id)
	if !ok || loc.Type != t {
		return nil, fmt.Errorf("%s blob %s is not in the index", t, id.Short())
	}
	return r.loadBlobFrom(ctx, be, backend.Handle{Type: PackType(t), Name: loc.Pack.String()}, id, loc)
}

func (r *Repository) loadBlobFrom(ctx context.Context, be backend.Backend, h backend.Handle, id blob.ID, loc Location) ([]byte, error) {
	sealed, err := be.Load(ctx, h, int64(loc.Offset), int64(loc.Length))
	if err != nil {
		return nil, fmt.Errorf("load blob %s from pack %s: %w", id.Short(), loc.Pack.Short(), err)
	}
	return r.DecodeBlob(sealed, id, loc.Type, int(loc.RawLen))
}

// DecodeBlob authenticates, decompresses and verifies a stored blob.
func (r *Repository) DecodeBlob(sealed []byte, id blob.ID, t blob.Type, rawLen int) ([]byte, error) {
	packed, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w: %w", id.Short(), err, ErrCorrupt)
	}
	c := r.data
	if t == blob.Tree {
		c = r.trees
	}
	plain, err := c.unpack(make([]byte, 0, rawLen), packed, rawLen)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), err)
	}
	if got := r.key.ID(plain); got != id {
		return nil, fmt.Errorf("blob %s: content hashes to %s: %w", id.Short(), got.Short(), ErrCorrupt)
	}
	return plain, nil
}

// SaveBlob stores plaintext as blob id unless the repository already has
// it. It reports whether the blob was new. Safe for concurrent use.
func (r *Repository) SaveBlob(ctx context.Context, t blob.Type, id blob.ID, plaintext []byte) (bool, error) {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return false, err
	}
	if _, ok := r.pending[id]; ok || r.idx.Has(id) {
		r.mu.Unlock()
		return false, nil
	}
	r.pending[id] = struct{}{}
	r.mu.Unlock()

	c := r.data
	compress := !r.noComp
	if t == blob.Tree {
		c, compress = r.trees, true
	}
	bufp := r.bufs.Get().(*[]byte)
	packed := c.pack((*bufp)[:0], plaintext, compress)
	sealedp := r.bufs.Get().(*[]byte)
	sealed := r.key.Seal((*sealedp)[:0], packed)
	*bufp = packed
	r.bufs.Put(bufp)
	r.blobBytes.Add(int64(len(plaintext)))

	r.mu.Lock()
	full := r.pack(t, id, sealed, len(plaintext))
	r.mu.Unlock()
	// Scratch buffers are reused: fewer large allocations, lower peak memory.
	*sealedp = sealed
	r.bufs.Put(sealedp)
	if full != nil {
		if err := r.upload(ctx, full); err != nil {
			return true, err
		}
	}
	return true, nil
}

// pack adds a sealed blob to the open pack of its type and returns the
// pack it finished to make room, if any. r.mu must be held.
func (r *Repository) pack(t blob.Type, id blob.ID, sealed []byte, rawLen int) (full *packer) {
	// A pack is finished before a blob would overflow it, so its buffer
	// never has to grow (and be copied) past the size it was made with.
	p := r.packers[t]
	if p != nil && len(p.blobs) > 0 && len(p.buf)+len(sealed) > r.cfg.PackSize {
		full = p
		p = nil
	}
	if p == nil {
		p = newPacker(t, r.cfg.PackSize)
		r.packers[t] = p
	}
	p.add(t, id, sealed, rawLen)
	return full
}

// upload finishes a pack and stores it in the background; at most two
// uploads run at once, which bounds memory to a few packs.
func (r *Repository) upload(ctx context.Context, p *packer) error {
	select {
	case r.uploadSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		defer func() { <-r.uploadSlots }()
		data := p.finish(r.key)
		id := blob.ID(sha256.Sum256(data))
		h := backend.Handle{Type: PackType(p.typ), Name: id.String()}
		err := r.be.Save(ctx, h, data)
		if errors.Is(err, backend.ErrExists) {
			err = nil // identical content already stored
		}
		r.mu.Lock()
		if err != nil {
			if r.err == nil {
				r.err = fmt.Errorf("save pack %s: %w", id.Short(), err)
			}
			r.mu.Unlock()
			return
		}
		ip := IndexPack{ID: id, Blobs: p.blobs}
		r.idx.add(ip)
		for _, b := range p.blobs {
			delete(r.pending, b.ID)
		}
		r.newPacks = append(r.newPacks, ip)
		r.newBlobs += len(ip.Blobs)
		var flush []IndexPack
		// An index file every 64 packs, or sooner for packs of many small
		// blobs: the pending entries, and the buffers that encode and
		// compress an index file, stay small.
		if len(r.newPacks) >= 64 || r.newBlobs >= r.indexBlobs {
			flush, r.newPacks, r.newBlobs = r.newPacks, nil, 0
			r.markIndexing(flush)
		}
		r.mu.Unlock()
		r.packBytes.Add(int64(len(data)))
		if flush != nil {
			if err := r.writeIndex(ctx, flush); err != nil {
				r.mu.Lock()
				if r.err == nil {
					r.err = err
				}
				r.mu.Unlock()
			} else if r.wantMerge() {
				// Apart from the upload slot: a merge rewrites the table,
				// which must not hold up the packs behind it.
				r.uploads.Add(1)
				go func() {
					defer r.uploads.Done()
					r.mergeDuringBackup()
				}()
			}
		}
	}()
	return nil
}

func (r *Repository) writeIndex(ctx context.Context, packs []IndexPack) error {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	id, err := r.SaveUnpacked(ctx, backend.Index, EncodeIndex(packs))
	if err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	r.mu.Lock()
	r.unmerged = append(r.unmerged, id.String())
	r.written = append(r.written, id.String())
	for _, p := range packs {
		delete(r.indexing, p.ID)
	}
	r.mu.Unlock()
	// Known at once, not only at Close: a process killed later must not
	// leave the cache unaware of a file a repair may remove.
	if err := r.saveKnown(); err != nil {
		return fmt.Errorf("record index file %s in the cache: %w", id.Short(), err)
	}
	return nil
}

// WrittenIndexFiles names the index files this handle wrote for its packs.
func (r *Repository) WrittenIndexFiles() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.written...)
}

// Flush stores all pending blobs and writes an index for them. After Flush
// returns nil, every blob saved so far is durable and indexed.
func (r *Repository) Flush(ctx context.Context) error {
	r.mu.Lock()
	var ps []*packer
	for t, p := range r.packers {
		ps = append(ps, p)
		delete(r.packers, t)
	}
	r.mu.Unlock()
	for _, p := range ps {
		if err := r.upload(ctx, p); err != nil {
			return err
		}
	}
	r.uploads.Wait()
	r.mu.Lock()
	err, packs := r.err, r.newPacks
	r.newPacks, r.newBlobs = nil, 0
	r.markIndexing(packs)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if len(packs) > 0 {
		return r.writeIndex(ctx, packs)
	}
	return nil
}

// Close waits for uploads in flight and closes the backend. It does not
// flush: a repository closed without Flush keeps only unreferenced packs.
// After a Flush that stored many blobs it merges them into the cache's
// index table, so the next run does not read them from index files.
func (r *Repository) Close() error {
	r.uploads.Wait()
	r.mu.Lock()
	flushed := r.err == nil && len(r.newPacks) == 0 && len(r.packers) == 0
	r.mu.Unlock()
	var known error
	if flushed {
		r.maybeMergeTable()
		known = r.saveKnown()
	}
	return errors.Join(known, r.idx.close(), r.be.Close())
}

// packer accumulates blobs of one type into a pack.
type packer struct {
	typ   blob.Type
	limit int
	buf   []byte
	blobs []PackedBlob
}

func newPacker(t blob.Type, limit int) *packer {
	// Small at first: most backups of few changes write small packs.
	return &packer{typ: t, limit: limit, buf: make([]byte, 0, min(limit+limit/8, 1<<20))}
}

func (p *packer) add(t blob.Type, id blob.ID, sealed []byte, rawLen int) {
	if need := len(p.buf) + len(sealed); need > cap(p.buf) {
		// Grow once to the full pack size rather than by append's small
		// steps, each of which would copy the whole pack.
		grown := make([]byte, len(p.buf), max(need, p.limit+p.limit/8))
		copy(grown, p.buf)
		p.buf = grown
	}
	p.blobs = append(p.blobs, PackedBlob{Type: t, ID: id, Offset: uint32(len(p.buf)), Length: uint32(len(sealed)), RawLen: uint32(rawLen)})
	p.buf = append(p.buf, sealed...)
}

func (p *packer) finish(key *crypto.Key) []byte {
	hdr := key.Seal(nil, encodePackHeader(p.blobs))
	p.buf = append(p.buf, hdr...)
	return binary.LittleEndian.AppendUint32(p.buf, uint32(len(hdr)))
}
