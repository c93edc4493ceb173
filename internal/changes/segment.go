package changes

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// An epoch's journal is a directory of segment files named by the sequence
// number of their first record. Only the last segment grows; compaction
// deletes whole segments from the front.
const (
	segMagic  = "TMJRNL1\n"
	segSuffix = ".seg"
	// defaultSegmentBytes is where the watcher starts a new segment, so
	// compaction can free space in steps of this size.
	defaultSegmentBytes = 4 << 20
)

type segment struct {
	first uint64
	path  string
	size  int64
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// listSegments returns the segments of an epoch directory sorted by first
// sequence number; fs.ErrNotExist when the directory does not exist.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || first == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // compacted meanwhile
			}
			return nil, err
		}
		segs = append(segs, segment{first: first, path: filepath.Join(dir, name), size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// Reading errors, turned into gap reasons by the callers.
var (
	errTruncated  = errors.New("records already truncated")
	errNotReached = errors.New("journal ends before the cursor")
)

// scanJournal calls fn for each record with after < seq <= upTo of the
// epoch directory dir, in order, checking that sequence numbers are
// contiguous from the first segment it reads. It returns errTruncated when
// the records after `after` were compacted away, errNotReached when the
// journal ends before upTo (unless upTo is the maximum, meaning "to the
// end"), and an error wrapping errCorruptRecord for damaged data.
func scanJournal(dir string, after, upTo uint64, fn func(Record) error) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("%s: no journal segments: %w", dir, fs.ErrNotExist)
	}
	i := sort.Search(len(segs), func(i int) bool { return segs[i].first > after+1 }) - 1
	if i < 0 {
		return errTruncated
	}
	expect := segs[i].first
	for ; i < len(segs); i++ {
		s := segs[i]
		if s.first != expect {
			return fmt.Errorf("%w: segment %s starts at %d, want %d", errCorruptRecord, filepath.Base(s.path), s.first, expect)
		}
		data, err := os.ReadFile(s.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && s.first <= after+1 {
				return errTruncated // compacted while we read
			}
			return err
		}
		if !strings.HasPrefix(string(data), segMagic) {
			if len(data) < len(segMagic) && i == len(segs)-1 {
				break // just created
			}
			return fmt.Errorf("%w: %s: bad header", errCorruptRecord, filepath.Base(s.path))
		}
		b := data[len(segMagic):]
		for len(b) > 0 {
			r, n, err := decodeRecord(b)
			if errors.Is(err, errShortRecord) && i == len(segs)-1 {
				// The tail of the active segment may be a batch being
				// written, or torn by a crash. Either way nothing after it
				// exists yet.
				break
			}
			if err != nil {
				if errors.Is(err, errShortRecord) {
					err = fmt.Errorf("%w: %s: truncated record", errCorruptRecord, filepath.Base(s.path))
				}
				return fmt.Errorf("%s at seq %d: %w", filepath.Base(s.path), expect, err)
			}
			if r.Seq != expect {
				return fmt.Errorf("%w: %s: seq %d, want %d", errCorruptRecord, filepath.Base(s.path), r.Seq, expect)
			}
			b = b[n:]
			expect++
			if r.Seq > after {
				if err := fn(r); err != nil {
					return err
				}
			}
			if r.Seq >= upTo {
				return nil
			}
		}
	}
	if upTo != ^uint64(0) {
		return fmt.Errorf("%w: last record %d, cursor %d", errNotReached, expect-1, upTo)
	}
	return nil
}

// journalWriter appends batches of records to an epoch directory. It is
// used by the watcher only (one goroutine).
type journalWriter struct {
	dir      string
	f        *os.File
	first    uint64 // first seq of the current segment
	next     uint64 // seq of the next record
	size     int64
	maxBytes int64
	buf      []byte
	// rotated is called after a new segment was started.
	rotated func()
	// lost is called after the current segment was found deleted (by a
	// user or a cleaner) and a new one started in its place.
	lost func()
}

func newJournalWriter(dir string, maxBytes int64) (*journalWriter, error) {
	if maxBytes <= 0 {
		maxBytes = defaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	w := &journalWriter{dir: dir, next: 1, maxBytes: maxBytes}
	if err := w.startSegment(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *journalWriter) startSegment() error {
	// The epoch directory may have been deleted under the watcher.
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(w.dir, segName(w.next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.first, w.size = f, w.next, int64(len(segMagic))
	return nil
}

// write assigns sequence numbers to recs, appends them and syncs the file.
// The records are durable when it returns.
func (w *journalWriter) write(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if w.deleted() {
		// Records in the deleted segment are gone: a gap, so that no
		// cursor before it is trusted, at the start of a new segment, so
		// that backups after it can use the journal again.
		if err := w.startSegment(); err != nil {
			return err
		}
		gap := Record{Kind: RecGap, Time: recs[0].Time, Text: "journal error: journal segment deleted"}
		recs = append([]Record{gap}, recs...)
		if w.lost != nil {
			w.lost()
		}
	} else if w.size >= w.maxBytes {
		if err := w.startSegment(); err != nil {
			return err
		}
		if w.rotated != nil {
			w.rotated()
		}
	}
	w.buf = w.buf[:0]
	for i := range recs {
		recs[i].Seq = w.next + uint64(i)
		w.buf = appendRecord(w.buf, recs[i])
	}
	// One write per batch: a reader sees either none or a prefix of whole
	// records plus a partial one, which it treats as not yet written.
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("journal write: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	w.next += uint64(len(recs))
	w.size += int64(len(w.buf))
	return nil
}

// deleted reports whether the current segment file is no longer in the
// journal directory.
func (w *journalWriter) deleted() bool {
	fi, err := w.f.Stat()
	if err != nil {
		return false // a write will report the problem
	}
	on, err := os.Stat(filepath.Join(w.dir, segName(w.first)))
	return err != nil || !os.SameFile(fi, on)
}

func (w *journalWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// tailer follows an epoch's journal as it grows, for Fence.
type tailer struct {
	dir   string
	first uint64 // segment being read
	off   int64
}

// newTailer starts at the beginning of the newest segment: every record
// written after the call is at or after that point. With no segment (they
// were deleted; the watcher starts a new one at its next write) it starts
// at the first segment that appears.
func newTailer(dir string) (*tailer, error) {
	segs, err := listSegments(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	t := &tailer{dir: dir, off: int64(len(segMagic))}
	if len(segs) > 0 {
		t.first = segs[len(segs)-1].first
	}
	return t, nil
}

// poll reads the records written since the last call and calls fn for
// each; it stops early when fn returns true and reports that.
func (t *tailer) poll(fn func(Record) bool) (bool, error) {
	for {
		// List before reading: a segment that has a successor is complete.
		segs, err := listSegments(t.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		if t.first == 0 {
			if len(segs) == 0 {
				return false, nil
			}
			t.first = segs[0].first
		}
		hasNext := false
		var next uint64
		for _, s := range segs {
			if s.first > t.first {
				hasNext, next = true, s.first
				break
			}
		}
		found, err := t.readCurrent(fn)
		if err != nil || found {
			return found, err
		}
		if !hasNext {
			return false, nil
		}
		t.first, t.off = next, int64(len(segMagic))
	}
}

func (t *tailer) readCurrent(fn func(Record) bool) (bool, error) {
	f, err := os.Open(filepath.Join(t.dir, segName(t.first)))
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return false, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return false, err
	}
	for len(data) > 0 {
		r, n, err := decodeRecord(data)
		if errors.Is(err, errShortRecord) {
			return false, nil // rest not written yet
		}
		if err != nil {
			return false, err
		}
		data = data[n:]
		t.off += int64(n)
		if fn(r) {
			return true, nil
		}
	}
	return false, nil
}
