package verify

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/state"
)

var password = []byte("secret")

func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory = 1, 8*1024
	return p, err
}

// t0 is the start of the simulated days.
var t0 = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)

// fixture is a repository of data packs of chosen sizes, one blob each.
type fixture struct {
	dir   string
	r     *repo.Repository
	sizes map[string]int64 // pack ID -> size of the stored file
	total int64
	max   int64 // the largest pack
}

// newFixture stores one random blob of each size, flushing after each so
// that each becomes a pack of its own, then opens the repository again
// so that the index is read from the index files, as a real run does.
func newFixture(t *testing.T, blobSizes []int, opt repo.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	opt.KDF = cheapKDF
	r, err := repo.Init(ctx, be.WithoutSync(), password, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range blobSizes {
		data := gentree.RandomBytes(n, uint64(i)+1)
		if _, err := r.SaveBlob(ctx, blob.Data, r.Key().ID(data), data); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err = repo.Open(ctx, be.WithoutSync(), password, opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f := &fixture{dir: dir, r: r, sizes: map[string]int64{}}
	for _, ft := range []backend.FileType{backend.Data, backend.Tree} {
		if err := be.List(ctx, ft, func(name string, size int64) error {
			f.sizes[name] = size
			f.total += size
			f.max = max(f.max, size)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func newState(t *testing.T) *state.DB {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// run runs verify at the simulated time now. Every run orders packs with
// the same seed, so that two regimes that agree on the ledger choose the
// same packs.
func (f *fixture) run(t *testing.T, st *state.DB, opt Options, now time.Time) Result {
	t.Helper()
	opt.Now = func() time.Time { return now }
	opt.Rand = rand.New(rand.NewPCG(1, 2))
	res, err := Run(context.Background(), f.r, st, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// corrupt flips a byte a quarter into a stored pack: inside its first
// blob, for the single-blob packs of these tests.
func (f *fixture) corrupt(t *testing.T, obj string) {
	t.Helper()
	ft, name, _ := strings.Cut(obj, "/")
	rel, err := backend.ObjectPath(backend.Handle{Type: backend.FileType(ft), Name: name})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, filepath.FromSlash(rel))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/4] ^= 0x01
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
}

type download struct {
	at    time.Time
	pack  string
	bytes int64
}

// simulation is what one regime of runs downloaded.
type simulation struct {
	downloads []download
	runs      int
	waited    int // runs that found the budget spent and read no index
}

// simulate runs verify every interval for days, starting at t0.
func (f *fixture) simulate(t *testing.T, opt Options, interval time.Duration, days int) simulation {
	t.Helper()
	st := newState(t)
	var sim simulation
	for now := t0; now.Before(t0.Add(time.Duration(days) * day)); now = now.Add(interval) {
		res := f.run(t, st, opt, now)
		sim.runs++
		if !res.WaitUntil.IsZero() {
			sim.waited++
			if len(res.Checked) != 0 || res.Packs != 0 {
				t.Fatalf("run at %v waited for the budget but read the index: %+v", now, res)
			}
		}
		if !res.OK() {
			t.Fatalf("run at %v found problems: %+v %+v", now, res.Problems, res.Damaged)
		}
		for _, c := range res.Checked {
			sim.downloads = append(sim.downloads, download{now, c.Pack, c.Bytes})
			if c.Bytes != f.sizes[c.Pack] {
				t.Fatalf("pack %s: downloaded %d bytes, it has %d", c.Pack, c.Bytes, f.sizes[c.Pack])
			}
		}
	}
	return sim
}

// perDay returns the bytes downloaded on each simulated day.
func (s simulation) perDay(days int) []int64 {
	out := make([]int64, days)
	for _, d := range s.downloads {
		out[int(d.at.Sub(t0)/day)] += d.bytes
	}
	return out
}

// maxWindow returns the most bytes downloaded in any window of length w
// (open at its start, as the budget's); the maximum is reached in a
// window ending at a download.
func (s simulation) maxWindow(w time.Duration) int64 {
	var most int64
	for _, end := range s.downloads {
		var sum int64
		for _, d := range s.downloads {
			if d.at.After(end.at.Add(-w)) && !d.at.After(end.at) {
				sum += d.bytes
			}
		}
		most = max(most, sum)
	}
	return most
}

// coverDays returns after how many days every pack had been verified, and
// the longest time between two verifications of the same pack (or from
// t0 to its first).
func (s simulation) coverDays(packs int) (days int, gap time.Duration) {
	last := map[string]time.Time{}
	for _, d := range s.downloads {
		prev, ok := last[d.pack]
		if !ok {
			prev = t0
		}
		gap = max(gap, d.at.Sub(prev))
		last[d.pack] = d.at
		if len(last) == packs && days == 0 {
			days = int(d.at.Sub(t0)/day) + 1
		}
	}
	return days, gap
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// TestFrequentRunsSpendNoMore is the test: verify after 288
// backups a day (every five minutes) downloads exactly what verify after
// one backup a day downloads, day after day; neither ever downloads more
// than the budget in any 24-hour window; and both read every pack within
// the days the budget implies.
//
// Both regimes order packs with the same seed, so equal ledgers choose
// equal packs, and the byte counts are compared for equality: the
// frequent regime spends its whole allowance at the first run of each
// day, and the 287 later runs find the next pack does not fit in what is
// left, until the first run's downloads leave the window exactly a day
// later.
func TestFrequentRunsSpendNoMore(t *testing.T) {
	t.Run("equal packs", func(t *testing.T) {
		// 24 packs, a budget of exactly 3 of them: 3 packs a day, every
		// pack read within ceil(total/budget) = 8 days.
		f := newFixture(t, slices.Repeat([]int{48 << 10}, 24), repo.Options{})
		if f.max*24 != f.total {
			t.Fatalf("packs differ in size: %v", f.sizes)
		}
		budget := 3 * f.max
		want := int(ceilDiv(f.total, budget))
		days := compareRegimes(t, f, budget, want+2)
		if days != want {
			t.Fatalf("every pack read after %d days, want ceil(total/budget) = %d", days, want)
		}
	})
	t.Run("mixed sizes", func(t *testing.T) {
		// Packs of 24 to 72 KiB and a budget of about three average ones:
		// each day spends more than the budget less the largest pack, so
		// every pack is read within ceil(total/(budget-largest)) days.
		rng := rand.New(rand.NewPCG(3, 4))
		sizes := make([]int, 30)
		for i := range sizes {
			sizes[i] = 24<<10 + rng.IntN(48<<10)
		}
		f := newFixture(t, sizes, repo.Options{})
		budget := int64(150 << 10)
		bound := int(ceilDiv(f.total, budget-f.max))
		days := compareRegimes(t, f, budget, bound+1)
		if days > bound {
			t.Fatalf("every pack read after %d days, want at most ceil(total/(budget-largest)) = %d", days, bound)
		}
	})
}

// compareRegimes simulates days of runs every five minutes and once a
// day, checks that they download the same bytes each day within the
// budget, and returns after how many days every pack had been read.
func compareRegimes(t *testing.T, f *fixture, budget int64, days int) int {
	t.Helper()
	opt := Options{Bytes: Budget{budget, day}, Requests: Budget{1000, day}}
	frequent := f.simulate(t, opt, 5*time.Minute, days)
	daily := f.simulate(t, opt, day, days)
	if frequent.runs != 288*days || daily.runs != days {
		t.Fatalf("%d and %d runs", frequent.runs, daily.runs)
	}
	// Once the budget is spent, runs return without reading the index
	// until the next pack fits.
	t.Logf("every five minutes: %d of %d runs waited for the budget without reading the index", frequent.waited, frequent.runs)
	if frequent.waited < 280*days {
		t.Fatalf("only %d of %d runs skipped reading the index", frequent.waited, frequent.runs)
	}
	fd, dd := frequent.perDay(days), daily.perDay(days)
	t.Logf("%d packs, %d bytes in all, largest %d; budget %d bytes/day", len(f.sizes), f.total, f.max, budget)
	t.Logf("bytes per day, every 5 minutes: %v", fd)
	t.Logf("bytes per day, once a day:      %v", dd)
	if !slices.Equal(fd, dd) {
		t.Fatalf("runs every five minutes downloaded %v bytes per day, daily runs %v", fd, dd)
	}
	for d, b := range dd {
		// The rotation stops at the first pack that does not fit, so a day
		// leaves less than one pack of its budget unspent.
		if b > budget || b <= budget-f.max {
			t.Fatalf("day %d: %d bytes downloaded, want more than %d and at most %d", d, b, budget-f.max, budget)
		}
	}
	for name, s := range map[string]simulation{"every five minutes": frequent, "once a day": daily} {
		if w := s.maxWindow(day); w > budget {
			t.Fatalf("%s: %d bytes in one 24-hour window, budget %d", name, w, budget)
		}
	}
	fdays, fgap := frequent.coverDays(len(f.sizes))
	ddays, dgap := daily.coverDays(len(f.sizes))
	t.Logf("every pack read after %d days (every five minutes) and %d days (once a day); longest gap %v and %v", fdays, ddays, fgap, dgap)
	if fdays != ddays || fdays == 0 {
		t.Fatalf("every pack read after %d days every five minutes, %d days once a day", fdays, ddays)
	}
	if limit := time.Duration(fdays) * day; fgap > limit || dgap > limit {
		t.Fatalf("a pack waited %v / %v between verifications, more than %v", fgap, dgap, limit)
	}
	return fdays
}

// TestCorruptionFoundWithinBudgetDays damages the pack verify will read
// last (one it has just verified) and runs verify every five minutes:
// the damage is found within ceil(total/budget) + 1 days, naming the
// pack and blob, and every later run reports it again without
// downloading it.
func TestCorruptionFoundWithinBudgetDays(t *testing.T) {
	f := newFixture(t, slices.Repeat([]int{48 << 10}, 24), repo.Options{})
	budget := 3 * f.max
	opt := Options{Bytes: Budget{budget, day}, Requests: Budget{100, day}}
	st := newState(t)
	first := f.run(t, st, opt, t0)
	if len(first.Checked) != 3 || !first.OK() {
		t.Fatalf("first run: %+v", first)
	}
	victim := "data/" + first.Checked[len(first.Checked)-1].Pack
	f.corrupt(t, victim)

	limit := time.Duration(ceilDiv(f.total, budget)+1) * day
	var found time.Time
	var reported []check.Problem
	opt.Report = func(p check.Problem) { reported = append(reported, p) }
	now := t0.Add(5 * time.Minute)
	for ; !now.After(t0.Add(limit)); now = now.Add(5 * time.Minute) {
		res := f.run(t, st, opt, now)
		if !res.OK() {
			found = now
			for _, c := range res.Checked {
				if c.OK != ("data/"+c.Pack != victim) {
					t.Fatalf("damage found, but the packs checked were %+v", res.Checked)
				}
			}
			if !slices.Equal(res.Problems, reported) {
				t.Fatalf("result problems %+v, reported %+v", res.Problems, reported)
			}
			kinds := map[string]bool{}
			for _, p := range res.Problems {
				kinds[p.Kind] = true
				if p.Object != victim {
					t.Fatalf("problem names %s, not the damaged pack %s: %+v", p.Object, victim, p)
				}
			}
			if !kinds[check.KindCorruptPack] || !kinds[check.KindCorruptBlob] {
				t.Fatalf("problems %+v, want corrupt-pack and corrupt-blob", res.Problems)
			}
			if len(res.Damaged) != 1 || res.Damaged[0].Object != victim || !res.Damaged[0].FoundAt.Equal(now) {
				t.Fatalf("damaged: %+v", res.Damaged)
			}
			break
		}
	}
	if found.IsZero() {
		t.Fatalf("damage in %s not found within %v", victim, limit)
	}
	t.Logf("damage in the pack verified last found after %v (limit ceil(total/budget)+1 days = %v)", found.Sub(t0), limit)

	// Later runs keep saying so, without downloading the pack again.
	later := f.run(t, st, opt, found.Add(5*time.Minute))
	if later.OK() || len(later.Problems) != 0 || len(later.Damaged) != 1 || later.Damaged[0].Object != victim ||
		!strings.Contains(later.Damaged[0].Problem, check.KindCorruptPack) {
		t.Fatalf("run after the damage was found: %+v", later)
	}
	for _, c := range later.Checked {
		if "data/"+c.Pack == victim {
			t.Fatal("damaged pack downloaded again at once")
		}
	}
}

// TestRequestBudget: the request budget bounds the number of packs
// however many bytes are left, in its own window.
func TestRequestBudget(t *testing.T) {
	f := newFixture(t, slices.Repeat([]int{4 << 10}, 10), repo.Options{})
	st := newState(t)
	opt := Options{Bytes: Budget{1 << 30, day}, Requests: Budget{3, time.Hour}}
	res := f.run(t, st, opt, t0)
	if len(res.Checked) != 3 || res.Requests != 3 || res.Stopped != StopRequests || res.RequestsLeft != 0 ||
		res.NeverVerified != 7 || res.WindowRequests != 3 {
		t.Fatalf("first run: %+v", res)
	}
	// 10 packs at 3 an hour take 4 hours, but no pack is read twice
	// within the byte budget's day.
	if res.Cycle != day {
		t.Fatalf("cycle %v, want a day", res.Cycle)
	}
	if res = f.run(t, st, opt, t0.Add(59*time.Minute)); len(res.Checked) != 0 || res.Stopped != StopRequests {
		t.Fatalf("run within the hour: %+v", res)
	}
	res = f.run(t, st, opt, t0.Add(time.Hour))
	if len(res.Checked) != 3 || res.NeverVerified != 4 || res.WindowBytes != 2*res.Bytes || res.WindowRequests != 3 {
		t.Fatalf("run an hour later: %+v", res)
	}
}

// TestSmallRepositoryReadOncePerPeriod: a repository smaller than the
// budget is read whole once per period, however often verify runs.
func TestSmallRepositoryReadOncePerPeriod(t *testing.T) {
	f := newFixture(t, []int{1000, 2000, 3000}, repo.Options{})
	st := newState(t)
	opt := Options{Bytes: Budget{1 << 20, day}, Requests: Budget{100, day}}
	res := f.run(t, st, opt, t0)
	if len(res.Checked) != 3 || res.Bytes != f.total || res.Stopped != StopDone || res.NeverVerified != 0 ||
		res.BytesLeft != 1<<20-f.total || res.TotalBytes != f.total {
		t.Fatalf("first run: %+v", res)
	}
	if res = f.run(t, st, opt, t0.Add(23*time.Hour)); len(res.Checked) != 0 || res.Stopped != StopDone {
		t.Fatalf("run within the day: %+v", res)
	}
	if res = f.run(t, st, opt, t0.Add(day)); len(res.Checked) != 3 {
		t.Fatalf("run a day later: %+v", res)
	}
}

// TestSizesFromIndex: the sizes verify computes from the index, with no
// request, are the stored files' sizes.
func TestSizesFromIndex(t *testing.T) {
	f := newFixture(t, []int{10, 5000, 70000}, repo.Options{})
	packs, err := indexedPacks(f.r.Index())
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) != len(f.sizes) {
		t.Fatalf("%d packs from the index, %d stored", len(packs), len(f.sizes))
	}
	for _, p := range packs {
		if p.size != f.sizes[p.name] {
			t.Errorf("pack %s: size %d from the index, %d stored", p.name, p.size, f.sizes[p.name])
		}
	}
}

// TestPackLargerThanBudget: a pack larger than the whole budget is
// skipped and listed, without blocking the packs behind it.
func TestPackLargerThanBudget(t *testing.T) {
	f := newFixture(t, []int{100 << 10, 1000, 1000}, repo.Options{})
	st := newState(t)
	res := f.run(t, st, Options{Bytes: Budget{50 << 10, day}, Requests: Budget{100, day}}, t0)
	if len(res.TooLarge) != 1 || len(res.Checked) != 2 || res.Stopped != StopDone {
		t.Fatalf("result: %+v", res)
	}
	if name := strings.TrimPrefix(res.TooLarge[0], "data/"); f.sizes[name] != f.max {
		t.Fatalf("%s listed as too large", res.TooLarge[0])
	}
}

// TestOffAndNoState: a budget of zero verifies nothing, needing no state;
// without a state database there is no ledger, which is an error.
func TestOffAndNoState(t *testing.T) {
	f := newFixture(t, []int{1000}, repo.Options{})
	for _, opt := range []Options{
		{Bytes: Budget{}, Requests: Budget{100, day}},
		{Bytes: Budget{1 << 20, day}, Requests: Budget{}},
	} {
		res, err := Run(context.Background(), f.r, nil, opt)
		if err != nil || res.Stopped != StopOff || len(res.Checked) != 0 || !res.OK() {
			t.Fatalf("verify off: %+v, %v", res, err)
		}
	}
	_, err := Run(context.Background(), f.r, nil, Options{Bytes: Budget{1 << 20, day}, Requests: Budget{100, day}})
	if !errors.Is(err, ErrNoLedger) || !strings.Contains(err.Error(), "--no-cache") {
		t.Fatalf("without a state database: %v", err)
	}
}

// TestMissingPack: a pack the index names but the backend lacks is
// damage, recorded with no bytes downloaded.
func TestMissingPack(t *testing.T) {
	f := newFixture(t, []int{1000, 2000}, repo.Options{})
	st := newState(t)
	var gone string
	for name := range f.sizes {
		gone = name
		break
	}
	rel, _ := backend.ObjectPath(backend.Handle{Type: backend.Data, Name: gone})
	if err := os.Remove(filepath.Join(f.dir, filepath.FromSlash(rel))); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, st, Options{Bytes: Budget{1 << 20, day}, Requests: Budget{100, day}}, t0)
	if len(res.Problems) != 1 || res.Problems[0].Kind != check.KindMissingPack || res.Problems[0].Object != "data/"+gone ||
		len(res.Damaged) != 1 || res.Bytes != f.total-f.sizes[gone] {
		t.Fatalf("result: %+v", res)
	}
	if b, n, err := st.VerifySpent(context.Background(), t0.Add(-day)); err != nil || b != res.Bytes || n != 2 {
		t.Fatalf("ledger: %d bytes in %d requests (%v), want %d in 2", b, n, err, res.Bytes)
	}
}

// TestReadsAroundCache: a tree pack has a good copy in the local cache,
// but verify reads the stored one and finds its damage.
func TestReadsAroundCache(t *testing.T) {
	cache := t.TempDir()
	opt := repo.Options{CacheDir: func(id string) (string, error) { return filepath.Join(cache, id), nil }}
	f := newFixture(t, nil, opt)
	ctx := context.Background()
	tree := []byte(`{"nodes":[]}`)
	if _, err := f.r.SaveBlob(ctx, blob.Tree, f.r.Key().ID(tree), tree); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packs, err := indexedPacks(f.r.Index())
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) != 1 || packs[0].ns != backend.Tree {
		t.Fatalf("packs: %+v", packs)
	}
	obj := packs[0].handle().String()
	f.corrupt(t, obj)
	if _, err := f.r.LoadBlob(ctx, blob.Tree, f.r.Key().ID(tree)); err != nil {
		t.Fatalf("the cached copy should still serve: %v", err)
	}
	res := f.run(t, newState(t), Options{Bytes: Budget{1 << 20, day}, Requests: Budget{100, day}}, t0)
	if res.OK() || len(res.Damaged) != 1 || res.Damaged[0].Object != obj {
		t.Fatalf("damage behind the cache not found: %+v", res)
	}
}

// TestWaitFollowsTheBudget: the record of a spent budget holds only for
// the budgets it was computed with; raising the budget verifies at once.
func TestWaitFollowsTheBudget(t *testing.T) {
	f := newFixture(t, slices.Repeat([]int{4 << 10}, 6), repo.Options{})
	st := newState(t)
	opt := Options{Bytes: Budget{2 * f.max, day}, Requests: Budget{100, day}}
	if res := f.run(t, st, opt, t0); len(res.Checked) != 2 || res.Stopped != StopBytes || !res.WaitUntil.IsZero() {
		t.Fatalf("first run: %+v", res)
	}
	res := f.run(t, st, opt, t0.Add(time.Hour))
	if res.WaitUntil != t0.Add(day) || len(res.Checked) != 0 || res.Stopped != StopBytes || res.BytesLeft != 0 {
		t.Fatalf("run during the wait: %+v", res)
	}
	opt.Bytes.Amount = 4 * f.max
	if res := f.run(t, st, opt, t0.Add(2*time.Hour)); len(res.Checked) != 2 || !res.WaitUntil.IsZero() {
		t.Fatalf("run with a larger budget: %+v", res)
	}
}
