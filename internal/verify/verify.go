package verify

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/state"
)

// ErrNoLedger is returned by Run without a state database.
var ErrNoLedger = errors.New("verify needs the local state database for the ledger of what it downloaded, " +
	"and --no-cache turns it off: run verify without --no-cache")

// Options tune Run.
type Options struct {
	// Bytes is the download budget: at most Bytes.Amount bytes in any
	// window of Bytes.Period. Off (zero) turns verify off.
	Bytes Budget
	// Requests bounds the downloads (one per pack) in any window of
	// Requests.Period. Off (zero) turns verify off.
	Requests Budget
	// Now returns the current time; nil means time.Now. Tests simulate
	// days with it.
	Now func() time.Time
	// Rand orders the packs never verified, and packs verified at the same
	// time; nil means a randomly seeded source.
	Rand *rand.Rand
	// Report, if set, is called for each problem as it is found.
	Report func(check.Problem)
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Why a run stopped (Result.Stopped).
const (
	StopOff      = "off"      // a budget is off: nothing was downloaded
	StopDone     = "done"     // every pack that fits the budget was verified within the period
	StopBytes    = "bytes"    // the next pack does not fit in the bytes left
	StopRequests = "requests" // no request is left
)

// Checked is one pack downloaded by a run.
type Checked struct {
	Pack  string `json:"pack"`
	Type  string `json:"type"` // "data" or "trees"
	Bytes int64  `json:"bytes"`
	OK    bool   `json:"ok"`
}

// Damaged is a pack whose last verification found damage.
type Damaged struct {
	Object  string    `json:"object"` // e.g. "data/<pack ID>"
	FoundAt time.Time `json:"found_at"`
	Problem string    `json:"problem"` // a summary; Result.Problems has the details of this run's finds
}

// Result tells what a run did.
type Result struct {
	Stopped string `json:"stopped"` // one of the Stop constants
	// Packs and TotalBytes describe the indexed packs; NeverVerified of
	// them have never been verified (counted after this run).
	Packs         int   `json:"packs"`
	TotalBytes    int64 `json:"total_bytes"`
	NeverVerified int   `json:"never_verified"`
	// Checked lists the packs this run downloaded; Bytes and Requests
	// total them.
	Checked  []Checked `json:"checked"`
	Bytes    int64     `json:"bytes"`
	Requests int64     `json:"requests"`
	// WindowBytes and WindowRequests are what all runs downloaded in the
	// budgets' current windows, this one included; BytesLeft and
	// RequestsLeft what the budgets still allow.
	WindowBytes    int64 `json:"window_bytes"`
	WindowRequests int64 `json:"window_requests"`
	BytesLeft      int64 `json:"bytes_left"`
	RequestsLeft   int64 `json:"requests_left"`
	// Cycle estimates the time between two verifications of a pack at
	// these budgets: the whole periods they need to allow every pack, and
	// at least one period of the byte budget, within which no pack is read
	// twice. Packs that fit the budget unevenly take longer (see the
	// package comment).
	Cycle time.Duration `json:"cycle_ns"`
	// TooLarge lists packs larger than the whole byte budget, which verify
	// can never read.
	TooLarge []string `json:"too_large,omitempty"`
	// Problems are the problems this run found.
	Problems []check.Problem `json:"problems"`
	// Damaged lists every indexed pack whose last verification, by this
	// run or an earlier one, found damage.
	Damaged []Damaged `json:"damaged"`
	// WaitUntil is set when an earlier run found the budget spent: until
	// then nothing can be downloaded, so this run did not read the index
	// (Packs, TotalBytes, NeverVerified and Cycle are not filled in).
	WaitUntil time.Time `json:"wait_until,omitzero"`
}

// OK reports whether the run found no problem and knows of no damage.
func (r Result) OK() bool { return len(r.Problems) == 0 && len(r.Damaged) == 0 }

// pack is what the index says about one pack.
type pack struct {
	id    blob.ID
	name  string // id.String()
	ns    backend.FileType
	blobs []repo.PackedBlob // where the index places them
	size  int64             // expected size of the pack file
	// last is when the pack was last verified, zero if never.
	last time.Time
}

func (p *pack) handle() backend.Handle { return backend.Handle{Type: p.ns, Name: p.name} }

// Run verifies as many packs of r as the budgets leave room for, least
// recently verified first, and records what it downloaded and found in
// st. Damage does not make Run fail: it is in the Result (and passed to
// opt.Report). Run returns an error only when it cannot go on: no state
// database, the ledger cannot be read or written, or ctx is done.
func Run(ctx context.Context, r *repo.Repository, st *state.DB, opt Options) (Result, error) {
	res := Result{Problems: []check.Problem{}, Damaged: []Damaged{}, Checked: []Checked{}}
	if opt.Bytes.Off() || opt.Requests.Off() {
		res.Stopped = StopOff
		return res, nil
	}
	if st == nil {
		return res, ErrNoLedger
	}
	rng := opt.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	start := opt.now()
	w, err := loadWait(ctx, st, opt, start)
	if err != nil {
		return res, err
	}
	if w != nil {
		return res, waiting(ctx, r, st, opt, start, w, &res)
	}
	packs, err := indexedPacks(r.Index())
	if err != nil {
		return res, err
	}
	res.Packs = len(packs)
	for _, p := range packs {
		res.TotalBytes += p.size
	}
	ledger, err := st.VerifiedPacks(ctx)
	if err != nil {
		return res, err
	}
	if err := forgetGone(ctx, st, ledger, packs); err != nil {
		return res, err
	}
	order(packs, ledger, rng)

	lastWindow := start.Add(-opt.Bytes.Window())
	spentBytes, spentReqs, err := spent(ctx, st, opt, start)
	if err != nil {
		return res, err
	}
	bytesLeft, reqsLeft := opt.Bytes.Amount-spentBytes, opt.Requests.Amount-spentReqs
	// blocked is the size of the pack the run stopped at for want of
	// budget, 0 if it did not.
	var blocked int64
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if p.last.After(lastWindow) {
			// Sorted by time: every pack from here on is as recent.
			res.Stopped = StopDone
			break
		}
		if p.size > opt.Bytes.Amount {
			res.TooLarge = append(res.TooLarge, p.handle().String())
			continue
		}
		if reqsLeft < 1 {
			res.Stopped, blocked = StopRequests, p.size
			break
		}
		if p.size > bytesLeft {
			res.Stopped, blocked = StopBytes, p.size
			break
		}
		now := opt.now()
		lim := state.VerifyLimits{
			BytesSince: now.Add(-opt.Bytes.Window()), MaxBytes: opt.Bytes.Amount,
			RequestsSince: now.Add(-opt.Requests.Window()), MaxRequests: opt.Requests.Amount,
		}
		row, ok, err := st.ReserveVerifyDownload(ctx, p.name, p.size, now, lim)
		if err != nil {
			return res, err
		}
		if !ok {
			// Another process spent the budget meanwhile.
			res.Stopped, blocked = StopBytes, p.size
			if _, reqs, err := spent(ctx, st, opt, now); err == nil && reqs >= opt.Requests.Amount {
				res.Stopped = StopRequests
			}
			break
		}
		out, err := verifyPack(ctx, r, p)
		if err != nil {
			return res, fmt.Errorf("verify pack %s: %w", p.id, err)
		}
		if out.bytes != p.size {
			if err := st.SettleVerifyDownload(ctx, row, out.bytes); err != nil {
				return res, err
			}
		}
		bytesLeft -= out.bytes
		reqsLeft--
		res.Bytes += out.bytes
		res.Requests++
		res.Checked = append(res.Checked, Checked{Pack: p.name, Type: string(p.ns), Bytes: out.bytes, OK: len(out.problems) == 0})
		for _, pr := range out.problems {
			res.Problems = append(res.Problems, pr)
			if opt.Report != nil {
				opt.Report(pr)
			}
		}
		if out.retry {
			continue // not a verdict on the pack: try it again next time
		}
		v := state.VerifiedPack{At: now, Problem: summarize(out.problems)}
		if err := st.MarkVerified(ctx, p.name, v.At, v.Problem); err != nil {
			return res, err
		}
		ledger[p.name] = v
	}
	if res.Stopped == "" {
		res.Stopped = StopDone
	}

	end := opt.now()
	if res.WindowBytes, res.WindowRequests, err = spent(ctx, st, opt, end); err != nil {
		return res, err
	}
	res.BytesLeft = max(0, opt.Bytes.Amount-res.WindowBytes)
	res.RequestsLeft = max(0, opt.Requests.Amount-res.WindowRequests)
	var fitting int64
	for _, p := range packs {
		v, ok := ledger[p.name]
		if !ok {
			res.NeverVerified++
		} else if v.Problem != "" {
			res.Damaged = append(res.Damaged, Damaged{Object: p.handle().String(), FoundAt: v.At, Problem: v.Problem})
		}
		if p.size <= opt.Bytes.Amount {
			fitting += p.size
		}
	}
	slices.SortFunc(res.Damaged, func(a, b Damaged) int { return cmp.Compare(a.Object, b.Object) })
	res.Cycle = max(cycle(fitting, opt.Bytes), cycle(int64(len(packs)-len(res.TooLarge)), opt.Requests), opt.Bytes.Window())
	// Records older than any window no longer count; a week is kept so
	// that a budget changed to a longer period still sees its history.
	keep := max(opt.Bytes.Window(), opt.Requests.Window(), 7*24*time.Hour)
	if err := st.PruneVerifyDownloads(ctx, end.Add(-keep)); err != nil {
		return res, err
	}
	return res, saveWait(ctx, st, opt, end, blocked, res.Stopped, res.Damaged)
}

// spent returns what the ledger holds in the budgets' windows ending at now.
func spent(ctx context.Context, st *state.DB, opt Options, now time.Time) (bytes, requests int64, err error) {
	if bytes, _, err = st.VerifySpent(ctx, now.Add(-opt.Bytes.Window())); err != nil {
		return 0, 0, err
	}
	if _, requests, err = st.VerifySpent(ctx, now.Add(-opt.Requests.Window())); err != nil {
		return 0, 0, err
	}
	return bytes, requests, nil
}

// cycle returns how long budget b takes to allow n, in whole periods.
func cycle(n int64, b Budget) time.Duration {
	k := n / b.Amount
	if n%b.Amount != 0 {
		k++
	}
	if k > math.MaxInt64/int64(b.Window()) {
		return math.MaxInt64
	}
	return time.Duration(k) * b.Window()
}

// headerEntrySize is the size of one blob's entry in a pack header (see
// repo/format.go: type, stored length, raw length, ID).
const headerEntrySize = 1 + 4 + 4 + blob.IDSize

// indexedPacks collects the packs the index names, sorted by ID, with
// their sizes computed from the index (see the package comment): the
// blobs' extent, then the sealed header (a version byte and one entry per
// blob) and its 4-byte length.
func indexedPacks(idx *repo.Index) ([]*pack, error) {
	m := map[blob.ID]*pack{}
	err := idx.Each(func(id blob.ID, l repo.Location) {
		p := m[l.Pack]
		if p == nil {
			p = &pack{id: l.Pack, name: l.Pack.String(), ns: repo.PackType(l.Type)}
			m[l.Pack] = p
		}
		p.blobs = append(p.blobs, repo.PackedBlob{Type: l.Type, ID: id, Offset: l.Offset, Length: l.Length, RawLen: l.RawLen})
		p.size = max(p.size, int64(l.Offset)+int64(l.Length))
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	packs := make([]*pack, 0, len(m))
	for _, p := range m {
		p.size += crypto.Overhead + 1 + int64(len(p.blobs))*headerEntrySize + 4
		slices.SortFunc(p.blobs, func(a, b repo.PackedBlob) int { return cmp.Compare(a.Offset, b.Offset) })
		packs = append(packs, p)
	}
	slices.SortFunc(packs, func(a, b *pack) int { return slices.Compare(a.id[:], b.id[:]) })
	return packs, nil
}

// order puts the packs never verified first, shuffled, then the others
// from the least recently verified; ties are broken at random.
func order(packs []*pack, ledger map[string]state.VerifiedPack, rng *rand.Rand) {
	for _, p := range packs {
		p.last = ledger[p.name].At // zero if never: before any other
	}
	rng.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
	slices.SortStableFunc(packs, func(a, b *pack) int { return a.last.Compare(b.last) })
}

// forgetGone drops the ledger records of packs no longer in the index.
// A pack added by a concurrent backup after r was opened may be dropped
// too; that only makes it look never verified.
func forgetGone(ctx context.Context, st *state.DB, ledger map[string]state.VerifiedPack, packs []*pack) error {
	indexed := make(map[string]bool, len(packs))
	for _, p := range packs {
		indexed[p.name] = true
	}
	var gone []string
	for id := range ledger {
		if !indexed[id] {
			gone = append(gone, id)
			delete(ledger, id)
		}
	}
	return st.ForgetVerified(ctx, gone)
}

// outcome is the result of verifying one pack.
type outcome struct {
	bytes    int64 // downloaded
	problems []check.Problem
	// retry is set when the download failed: not a verdict on the pack.
	retry bool
}

// verifyPack downloads pack p whole from the backend without the cache and
// checks it against its name, the index and the blobs' IDs. The error is
// only for a cancelled context.
func verifyPack(ctx context.Context, r *repo.Repository, p *pack) (outcome, error) {
	h := p.handle()
	obj := h.String()
	data, err := backend.LoadAll(ctx, r.Raw(), h)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, ctx.Err()
		}
		if errors.Is(err, backend.ErrNotFound) {
			return outcome{problems: []check.Problem{{Kind: check.KindMissingPack, Object: obj,
				Err: fmt.Sprintf("pack of %d indexed blobs is not stored", len(p.blobs))}}}, nil
		}
		// Whatever was transferred before the failure counts: assume all.
		return outcome{bytes: p.size, retry: true, problems: []check.Problem{{Kind: check.KindReadError, Object: obj, Err: err.Error()}}}, nil
	}
	out := outcome{bytes: int64(len(data))}
	problem := func(kind string, b blob.ID, format string, args ...any) {
		pr := check.Problem{Kind: kind, Object: obj, Err: fmt.Sprintf(format, args...)}
		if !b.IsNull() {
			pr.Blob = b.String()
		}
		out.problems = append(out.problems, pr)
	}
	if sum := blob.ID(sha256.Sum256(data)); sum != p.id {
		problem(check.KindCorruptPack, blob.Null, "content hashes to %s", sum)
	}
	if hdr, err := repo.ParsePack(r.Key(), data); err != nil {
		problem(check.KindCorruptPack, blob.Null, "%v", err)
	} else {
		compareHeader(r.Index(), p, hdr, problem)
	}
	// Blobs are read where the index places them, as a restore would, even
	// if the header is damaged: that names the blobs that are lost.
	for _, b := range p.blobs {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(data)) {
			problem(check.KindCorruptBlob, b.ID, "blob %s ends at byte %d, beyond the pack's %d bytes", b.ID.Short(), end, len(data))
			continue
		}
		plain, err := r.DecodeBlob(data[b.Offset:end], b.ID, b.Type, int(b.RawLen))
		if err != nil {
			problem(check.KindCorruptBlob, b.ID, "%v", err)
			continue
		}
		if len(plain) != int(b.RawLen) {
			problem(check.KindIndexMismatch, b.ID, "blob %s holds %d bytes, the index says %d", b.ID.Short(), len(plain), b.RawLen)
		}
	}
	return out, nil
}

// compareHeader reports where a pack's header and the index disagree. A
// blob in the header that the index places in another pack is a second
// copy (two backups stored it at once), not a problem.
func compareHeader(idx *repo.Index, p *pack, hdr []repo.PackedBlob, problem func(string, blob.ID, string, ...any)) {
	inHeader := make(map[blob.ID]repo.PackedBlob, len(hdr))
	for _, b := range hdr {
		inHeader[b.ID] = b
	}
	for _, b := range p.blobs {
		hb, ok := inHeader[b.ID]
		switch {
		case !ok:
			problem(check.KindIndexMismatch, b.ID, "indexed blob %s is not in the pack header", b.ID.Short())
		case hb != b:
			problem(check.KindIndexMismatch, b.ID, "blob %s: pack header has %s, index has %s", b.ID.Short(), describe(hb), describe(b))
		}
		delete(inHeader, b.ID)
	}
	for _, b := range hdr {
		if _, ok := inHeader[b.ID]; ok && !idx.Has(b.ID) {
			problem(check.KindIndexMismatch, b.ID, "blob %s is in the pack but in no index", b.ID.Short())
		}
	}
}

func describe(b repo.PackedBlob) string {
	return fmt.Sprintf("%s blob at %d, %d bytes stored, %d raw", b.Type, b.Offset, b.Length, b.RawLen)
}

// summarize describes a pack's problems in one line for the ledger.
func summarize(ps []check.Problem) string {
	if len(ps) == 0 {
		return ""
	}
	s := ps[0].Kind + ": " + ps[0].Err
	switch len(ps) {
	case 1:
	case 2:
		s += " (and 1 more problem)"
	default:
		s += fmt.Sprintf(" (and %d more problems)", len(ps)-1)
	}
	return s
}
