// Package gentree generates deterministic file trees for the demo, tests
// and benchmarks, changes them, and compares two trees. It is not used by
// backups themselves.
package gentree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	tmfs "github.com/tidemark/tidemark/internal/fs"
)

// Spec describes a tree.
type Spec struct {
	Files int    // number of regular files
	Seed  uint64 // same seed, same tree
	// LargeEvery makes every n-th file a large one (0: default 500).
	LargeEvery int
	// LargeSize is the size of large files (0: default 4 MiB).
	LargeSize int
	// PerDir is the number of files per directory (0: default 100).
	PerDir int
	// Small makes every file smaller than 4 KiB (100 to 4,000 bytes, text
	// or random bytes, some duplicates) and none large: the small-files
	// tree, where per-file costs dominate.
	Small bool
}

// Stats describes what Generate wrote.
type Stats struct {
	Files int
	Dirs  int
	Bytes int64
}

// Generate writes a tree under dir: mostly small files (compressible text
// and random bytes), some large files, some duplicates, in nested
// directories.
func Generate(dir string, s Spec) (Stats, error) {
	if s.LargeEvery == 0 {
		s.LargeEvery = 500
	}
	if s.LargeSize == 0 {
		s.LargeSize = 4 << 20
	}
	if s.PerDir == 0 {
		s.PerDir = 100
	}
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	var st Stats
	var dup []byte
	for i := 0; i < s.Files; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/(s.PerDir*20)), fmt.Sprintf("s%03d", i/s.PerDir%20))
		if i%s.PerDir == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return st, err
			}
			st.Dirs++
		}
		var data []byte
		switch {
		case s.Small && i%97 == 5 && dup != nil:
			data = dup
		case s.Small && i%2 == 0:
			data = RandomBytes(100+rng.IntN(3900), rng.Uint64())
		case s.Small:
			data = text(rng, 100+rng.IntN(3900))
		case i%s.LargeEvery == s.LargeEvery-1:
			data = RandomBytes(s.LargeSize, rng.Uint64())
		case i%97 == 5 && dup != nil:
			data = dup // a duplicate of an earlier file
		case i%3 == 0:
			data = RandomBytes(100+rng.IntN(8000), rng.Uint64())
		default:
			data = text(rng, 200+rng.IntN(16000))
		}
		if i%97 == 4 {
			dup = bytes.Clone(data)
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%06d.dat", i)), data, 0o644); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += int64(len(data))
	}
	return st, nil
}

// RandomBytes returns n incompressible bytes, the same for the same seed.
func RandomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

var words = []string{"tide", "mark", "backup", "journal", "snapshot", "river", "harbour", "lighthouse", "anchor", "sail", "the", "of", "and", "wave"}

func text(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// Modify changes n regular files under dir (appending a line to each),
// chosen deterministically by seed, and returns their paths.
func Modify(dir string, n int, seed uint64) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n > len(files) {
		n = len(files)
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	for _, p := range files[:n] {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		_, err = fmt.Fprintf(f, "changed %d\n", rng.Uint64())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return files[:n], nil
}

// Compare reports the first difference between trees a and b: entry sets,
// types, contents, symlink targets, permission bits and mtimes of files.
func Compare(a, b string) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		seen[rel] = true
		q := filepath.Join(b, rel)
		ia, err := os.Lstat(p)
		if err != nil {
			return err
		}
		ib, err := os.Lstat(q)
		if err != nil {
			return fmt.Errorf("%s: missing in %s", rel, b)
		}
		if ia.Mode() != ib.Mode() {
			return fmt.Errorf("%s: mode %v vs %v", rel, ia.Mode(), ib.Mode())
		}
		switch {
		case ia.Mode().IsRegular():
			if !ia.ModTime().Equal(ib.ModTime()) {
				return fmt.Errorf("%s: mtime %v vs %v", rel, ia.ModTime(), ib.ModTime())
			}
			da, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			db, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			if !bytes.Equal(da, db) {
				return fmt.Errorf("%s: contents differ", rel)
			}
			if err := compareOwners(rel, p, q); err != nil {
				return err
			}
		case ia.Mode()&fs.ModeSymlink != 0:
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(q)
			if ta != tb {
				return fmt.Errorf("%s: symlink %q vs %q", rel, ta, tb)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b, p)
		if !seen[rel] {
			return fmt.Errorf("%s: only in %s", rel, b)
		}
		return nil
	})
}

// compareOwners compares the owners of a and b. Package fs reports them
// where the platform has them (on Windows both are 0, so they agree).
func compareOwners(rel, a, b string) error {
	var st [2]tmfs.Stat
	for i, p := range []string{a, b} {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if st[i], err = tmfs.Lstat(abs); err != nil {
			return err
		}
	}
	if st[0].UID != st[1].UID || st[0].GID != st[1].GID {
		return fmt.Errorf("%s: owner %d:%d vs %d:%d", rel, st[0].UID, st[0].GID, st[1].UID, st[1].GID)
	}
	return nil
}
