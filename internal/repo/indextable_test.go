package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/crypto"
	"pgregory.net/rapid"
)

func randomEntries(t *rapid.T, label string, packs []blob.ID) []tableEntry {
	n := rapid.IntRange(0, 300).Draw(t, label+" count")
	out := make([]tableEntry, n)
	for i := range out {
		copy(out[i].id[:], rapid.SliceOfN(rapid.Byte(), blob.IDSize, blob.IDSize).Draw(t, "id"))
		// Collide on the fanout bucket often, to exercise the search.
		if rapid.Bool().Draw(t, "same bucket") {
			out[i].id[0], out[i].id[1] = 7, 9|out[i].id[1]&0xf0
		}
		out[i].l = Location{Pack: packs[rapid.IntRange(0, len(packs)-1).Draw(t, "pack")],
			Type:   rapid.SampledFrom([]blob.Type{blob.Data, blob.Tree}).Draw(t, "type"),
			Offset: rapid.Uint32().Draw(t, "off"), Length: rapid.Uint32().Draw(t, "len"), RawLen: rapid.Uint32().Draw(t, "raw")}
	}
	return out
}

// TestTableMerge writes a table, merges more entries into a second one and
// compares every lookup with a map.
func TestTableMerge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp("", "table-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		packs := []blob.ID{testID(1), testID(2), testID(3)}
		want := map[blob.ID]Location{}
		var old *table
		var names []string
		for round := range rapid.IntRange(1, 3).Draw(t, "rounds") {
			extra := randomEntries(t, "entries", packs)
			for _, e := range extra {
				if _, ok := want[e.id]; !ok {
					want[e.id] = e.l // the first copy wins, as in the table
				}
			}
			names = append(names, fmt.Sprintf("%064x", round))
			path := filepath.Join(dir, fmt.Sprintf("t%d", round))
			if err := writeTable(path, old, extra, names); err != nil {
				t.Fatal(err)
			}
			old.close()
			if old, err = openTable(path); err != nil {
				t.Fatal(err)
			}
		}
		defer old.close()
		if old.n != len(want) {
			t.Fatalf("table has %d entries, want %d", old.n, len(want))
		}
		if got := len(old.nameSet()); got != len(names) {
			t.Fatalf("table names %d index files, want %d", got, len(names))
		}
		for id, l := range want {
			if got, ok := old.find(id); !ok || got != l {
				t.Fatalf("blob %s: got %+v %v, want %+v", id.Short(), got, ok, l)
			}
		}
		absent := blob.ID{7, 9}
		if _, ok := want[absent]; !ok {
			if _, found := old.find(absent); found {
				t.Fatal("absent blob found")
			}
		}
		seen := 0
		var prev blob.ID
		if err := old.each(func(id blob.ID, l Location) {
			if seen > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
				t.Fatalf("each: %s after %s", id.Short(), prev.Short())
			}
			if want[id] != l {
				t.Fatalf("each: blob %s at %+v, want %+v", id.Short(), l, want[id])
			}
			prev = id
			seen++
		}); err != nil || seen != len(want) {
			t.Fatalf("each: %d entries, %v; want %d", seen, err, len(want))
		}
	})
}

func TestOpenTableMissingAndDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index.tbl")
	if tb, err := openTable(path); tb != nil || err != nil {
		t.Fatalf("missing table: %v, %v", tb, err)
	}
	if err := writeTable(path, nil, []tableEntry{{id: testID(5), l: Location{Pack: testID(6), Type: blob.Data}}}, []string{fmt.Sprintf("%064x", 1)}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"header bit", func(b []byte) []byte { b[9] ^= 1; return b }},
		{"fanout bit", func(b []byte) []byte { b[tableHeader+100] ^= 1; return b }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.damage(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := openTable(path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestIndexTableRepository drives real repositories through backups,
// reopenings (which read new index files and merge them into the table),
// removed index files and damaged tables, and checks after every opening
// that the index holds exactly the blobs of the index files present.
func TestIndexTableRepository(t *testing.T) {
	ctx := context.Background()
	cheap := func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory, p.Threads = 1, 8*1024, 1
		return p, err
	}
	rapid.Check(t, func(t *rapid.T) {
		dir, err := os.MkdirTemp("", "indextable-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		be, err := local.Create(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		be = be.WithoutSync()
		cacheDir := filepath.Join(dir, "cache")
		opt := Options{KDF: cheap, CacheDir: func(string) (string, error) { return cacheDir, nil },
			mergeFiles: rapid.IntRange(1, 4).Draw(t, "merge files"), mergeBlobs: rapid.IntRange(1, 40).Draw(t, "merge blobs")}
		r, err := Init(ctx, be, []byte("pw"), opt)
		if err != nil {
			t.Fatal(err)
		}
		// want is the oracle: blob -> the index files that list it.
		want := map[blob.ID]map[string]bool{}
		files := func() []string {
			var names []string
			be.List(ctx, backend.Index, func(n string, _ int64) error { names = append(names, n); return nil })
			return names
		}
		seq := 0
		for range rapid.IntRange(1, 12).Draw(t, "steps") {
			switch rapid.IntRange(0, 4).Draw(t, "action") {
			case 0, 1: // a backup: new blobs, some already stored
				before := map[string]bool{}
				for _, n := range files() {
					before[n] = true
				}
				var ids []blob.ID
				for range rapid.IntRange(1, 8).Draw(t, "blobs") {
					seq++
					plain := []byte(fmt.Sprintf("blob %d", rapid.IntRange(0, seq).Draw(t, "content")))
					id := r.Key().ID(plain)
					if _, err := r.SaveBlob(ctx, blob.Data, id, plain); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}
				if err := r.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				for _, n := range files() {
					if before[n] {
						continue
					}
					packs, err := r.LoadIndexFile(ctx, n)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range packs {
						for _, b := range p.Blobs {
							if want[b.ID] == nil {
								want[b.ID] = map[string]bool{}
							}
							want[b.ID][n] = true
						}
					}
				}
				for _, id := range ids {
					if !r.Index().Has(id) {
						t.Fatalf("blob %s saved but not in the index", id.Short())
					}
				}
			case 2: // prune-like: an index file disappears
				names := files()
				if len(names) == 0 {
					continue
				}
				gone := rapid.SampledFrom(names).Draw(t, "remove index")
				if err := be.Remove(ctx, backend.Handle{Type: backend.Index, Name: gone}); err != nil {
					t.Fatal(err)
				}
				for id, in := range want {
					delete(in, gone)
					if len(in) == 0 {
						delete(want, id)
					}
				}
			case 4: // an interrupted backup: blobs saved, never flushed
				for range rapid.IntRange(1, 5).Draw(t, "unflushed") {
					seq++
					plain := []byte(fmt.Sprintf("unflushed %d", seq))
					if _, err := r.SaveBlob(ctx, blob.Data, r.Key().ID(plain), plain); err != nil {
						t.Fatal(err)
					}
				}
			case 3: // a damaged table
				if b, err := os.ReadFile(tableFile(cacheDir)); err == nil && len(b) > 0 {
					b[rapid.IntRange(0, min(len(b), tableHeader+4*tableFanout)-1).Draw(t, "flip")] ^= 0x10
					os.WriteFile(tableFile(cacheDir), b, 0o600)
				}
			}
			r.Close()
			if r, err = Open(ctx, be, []byte("pw"), opt); err != nil {
				t.Fatal(err)
			}
			if r.Index().Len() != len(want) {
				t.Fatalf("index has %d blobs, want %d", r.Index().Len(), len(want))
			}
			for id := range want {
				if !r.Index().Has(id) {
					t.Fatalf("blob %s missing from the index", id.Short())
				}
			}
			seen := 0
			r.Index().Each(func(id blob.ID, l Location) {
				seen++
				if want[id] == nil {
					t.Fatalf("index lists blob %s that no index file has", id.Short())
				}
			})
			if seen != len(want) {
				t.Fatalf("Each visited %d blobs, want %d", seen, len(want))
			}
		}
		r.Close()
	})
}

// TestTableFindSkewed: IDs crowded into a corner of their bucket put the
// interpolated position far from the entry, so a lookup takes several
// reads; every entry is still found, and absent IDs on either side of and
// between them are not.
func TestTableFindSkewed(t *testing.T) {
	pack := testID(1)
	var es []tableEntry
	want := map[blob.ID]Location{}
	for i := range 3000 {
		var id blob.ID
		id[0], id[1] = 0x7e, 0x50                         // one bucket
		id[2], id[3], id[4] = 0, byte(i>>8), byte(i&0xff) // its lowest thousandth
		id[5] = 1
		l := Location{Pack: pack, Type: blob.Data, Offset: uint32(i), Length: 1, RawLen: 1}
		es = append(es, tableEntry{id, l})
		want[id] = l
	}
	path := filepath.Join(t.TempDir(), "index.tbl")
	if err := writeTable(path, nil, es, nil); err != nil {
		t.Fatal(err)
	}
	tb, err := openTable(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	for id, l := range want {
		if got, ok := tb.find(id); !ok || got != l {
			t.Fatalf("blob %x: %+v %v, want %+v", id[:6], got, ok, l)
		}
		absent := id
		absent[5] = 0 // just before it
		if _, ok := tb.find(absent); ok {
			t.Fatalf("absent blob %x found", absent[:6])
		}
	}
	var high blob.ID
	high[0], high[1], high[2] = 0x7e, 0x5f, 0xff // after all of them
	if _, ok := tb.find(high); ok {
		t.Fatal("absent blob after the bucket's entries found")
	}
}
