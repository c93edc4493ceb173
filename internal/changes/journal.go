package changes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Journal reads the change journal of a state directory. It holds no open
// files; its methods may be called concurrently with a running watcher and
// with other readers.
type Journal struct {
	l layout
	// now is time.Now, replaceable in tests.
	now func() time.Time
	// maxFenceWait bounds a fence's wait for a watcher that makes
	// progress (MaxFenceWait; tests shorten it).
	maxFenceWait time.Duration
}

// OpenJournal opens the journal in stateDir for reading. The directory need
// not contain a journal yet (Fence then says the watcher is not running).
func OpenJournal(stateDir string) (*Journal, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	if dir, err := resolveExisting(abs); err == nil {
		abs = dir
	}
	return &Journal{l: layout{abs}, now: time.Now, maxFenceWait: MaxFenceWait}, nil
}

// StateDir returns the journal's state directory.
func (j *Journal) StateDir() string { return j.l.dir }

// Since returns the union of what was recorded after from and up to to (a
// fence cursor), restricted to paths at or below one of roots (absolute and
// clean), or a *GapError when the record between them is not provably
// complete.
func (j *Journal) Since(from, to Cursor, roots []string) (Delta, error) {
	roots, err := cleanRoots(roots)
	if err != nil {
		return Delta{}, fmt.Errorf("journal since: %w", err)
	}
	switch {
	case from.IsZero():
		return Delta{}, gapf("no cursor")
	case to.IsZero() || to.Epoch == "" || to.Seq == 0:
		return Delta{}, fmt.Errorf("journal since: no fence cursor")
	case from.Kind != to.Kind:
		return Delta{}, gapf("source changed (%s, now %s)", from.Kind, to.Kind)
	case from.Epoch != to.Epoch:
		return Delta{}, gapf("epoch changed")
	case from.Seq > to.Seq:
		return Delta{}, gapf("cursor %d is after the fence %d", from.Seq, to.Seq)
	}
	var meta epochMeta
	if err := readJSON(j.l.epochMeta(to.Epoch), &meta); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Delta{}, gapf("journal error: epoch %s not found", to.Epoch)
		}
		return Delta{}, gapf("journal error: %v", err)
	}
	if meta.Kind != to.Kind {
		return Delta{}, gapf("source changed (%s, journal says %s)", to.Kind, meta.Kind)
	}
	for _, r := range roots {
		if !underAny(r, meta.Roots) {
			return Delta{}, gapf("path not watched: %s", r)
		}
	}
	if from.Seq == to.Seq {
		return Delta{}, nil
	}
	acc := newDeltaBuilder(roots)
	err = scanJournal(j.l.epoch(to.Epoch), from.Seq, to.Seq, acc.add)
	if err != nil {
		var g *GapError
		switch {
		case errors.As(err, &g):
			return Delta{}, err
		case errors.Is(err, errTruncated):
			return Delta{}, gapf("records already truncated")
		case errors.Is(err, fs.ErrNotExist):
			return Delta{}, gapf("journal error: journal of epoch %s missing", to.Epoch)
		default:
			return Delta{}, gapf("journal error: %v", err)
		}
	}
	return acc.delta(), nil
}

// deltaBuilder applies the gap rules and collects a Delta.
type deltaBuilder struct {
	roots  []string
	dirs   map[string]struct{}
	trees  map[string]struct{}
	inodes map[Inode]struct{}
}

func newDeltaBuilder(roots []string) *deltaBuilder {
	return &deltaBuilder{roots: roots, dirs: map[string]struct{}{}, trees: map[string]struct{}{}, inodes: map[Inode]struct{}{}}
}

func (d *deltaBuilder) add(r Record) error {
	switch r.Kind {
	case RecGap:
		if r.Path == "" || overlapsAny(r.Path, d.roots) {
			return &GapError{Reason: r.Text}
		}
	case RecStart:
		// Seq 1 is the start record; a cursor is always taken after it.
		return gapf("watcher restarted")
	case RecDirty:
		if underAny(r.Path, d.roots) {
			d.dirs[r.Path] = struct{}{}
		}
	case RecTree:
		if underAny(r.Path, d.roots) {
			d.trees[r.Path] = struct{}{}
		}
	case RecInode, RecLinkAdded:
		in := Inode{Path: r.Path}
		if r.Text != "" {
			in.Dev, in.Ino, _ = parseDevIno(r.Text) // validated on decode
		}
		switch {
		case r.Path != "" && underAny(r.Path, d.roots):
			// A link inside: its directory is listed, which finds the
			// rest.
		case in.Ino == 0:
			// Known by a path outside these roots alone: that path's
			// own records (its directory, its other links' events)
			// carry what concerns these roots.
			return nil
		default:
			// A link outside these roots (perhaps inside the roots of
			// another backup set): another link of the inode may be
			// inside, which only its number can find.
			in.Path = ""
			if r.Kind == RecLinkAdded {
				in.LinkAdded, in.Outside = true, r.Path
			}
		}
		d.inodes[in] = struct{}{}
	}
	return nil
}

func (d *deltaBuilder) delta() Delta {
	var out Delta
	for p := range d.dirs {
		out.Dirs = append(out.Dirs, p)
	}
	for p := range d.trees {
		out.Trees = append(out.Trees, p)
	}
	for in := range d.inodes {
		out.Inodes = append(out.Inodes, in)
	}
	sort.Strings(out.Dirs)
	sort.Strings(out.Trees)
	sort.Slice(out.Inodes, func(i, j int) bool {
		a, b := out.Inodes[i], out.Inodes[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Dev != b.Dev {
			return a.Dev < b.Dev
		}
		return a.Ino < b.Ino
	})
	return out
}

func setFileName(set string) string {
	sum := sha256.Sum256([]byte(set))
	return hex.EncodeToString(sum[:16])
}

// Release tells the journal that the backup set `set` (an opaque name) no
// longer needs records at or before c. It only records that: the watcher
// deletes the segments every registered set of its epoch has passed when
// it starts a new segment, so a backup costs O(1) here however many sets
// there are.
func (j *Journal) Release(set string, c Cursor) error {
	if set == "" {
		return errors.New("journal release: empty set name")
	}
	if c.IsZero() || c.Epoch == "" || strings.ContainsAny(c.Epoch, `/\`) || c.Epoch == "." || c.Epoch == ".." {
		return fmt.Errorf("journal release: bad cursor %v", c)
	}
	if err := os.MkdirAll(j.l.sets(), 0o755); err != nil {
		return fmt.Errorf("journal release: %w", err)
	}
	st := setState{Set: set, Cursor: c, Time: j.now().UTC()}
	if err := writeJSONAtomic(j.l.set(setFileName(set)), st, true); err != nil {
		return fmt.Errorf("journal release: %w", err)
	}
	return nil
}

// readSets returns every registered set.
func readSets(l layout) ([]setState, error) {
	ents, err := os.ReadDir(l.sets())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []setState
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var st setState
		if err := readJSON(filepath.Join(l.sets(), e.Name()), &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			// A damaged set file must not make compaction delete what
			// that set may still need: stop compacting.
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Set < out[k].Set })
	return out, nil
}

// abandonedSet is how long a backup set may go without a backup before it
// stops holding back compaction. Its next backup then finds its records
// truncated and scans fully, which is safe; keeping a deleted backup
// configuration's records forever is not.
const abandonedSet = 30 * 24 * time.Hour

// compact deletes the segments of epoch whose records every set registered
// for that epoch has released. The newest segment, which the watcher may be
// appending to, is never deleted. It returns the number of deleted
// segments.
func compact(l layout, epoch string, now time.Time) (int, error) {
	sets, err := readSets(l)
	if err != nil {
		return 0, err
	}
	var min uint64
	found := false
	for _, s := range sets {
		if s.Cursor.Epoch != epoch || now.Sub(s.Time) > abandonedSet {
			continue // sets of other epochs cannot use these records
		}
		if !found || s.Cursor.Seq < min {
			min, found = s.Cursor.Seq, true
		}
	}
	if !found {
		return 0, nil
	}
	segs, err := listSegments(l.epoch(epoch))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i+1 < len(segs); i++ {
		// Segment i holds seqs first..segs[i+1].first-1.
		if segs[i+1].first-1 > min {
			break
		}
		if err := os.Remove(segs[i].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}

// Status describes the watcher and the journal.
type Status struct {
	StateDir string `json:"state_dir"`
	// Watcher is the content of watcher.json (nil when there is none).
	Watcher *WatcherState `json:"watcher,omitempty"`
	// Alive: a watcher holds the lock of the state directory.
	Alive bool `json:"alive"`
	// Fresh: Alive, its heartbeat is recent and it is not stalled.
	Fresh bool `json:"fresh"`
	// Stalled: Alive, and its watchdog says what it is stuck on (the
	// reason is Watcher.Stalled).
	Stalled bool `json:"stalled,omitempty"`
	// Epoch and LastSeq are the current journal position.
	Epoch   string `json:"epoch,omitempty"`
	LastSeq uint64 `json:"last_seq"`
	// FirstSeq is the oldest record still kept.
	FirstSeq     uint64             `json:"first_seq"`
	JournalBytes int64              `json:"journal_bytes"`
	Segments     int                `json:"segments"`
	Filesystems  []FilesystemStatus `json:"filesystems,omitempty"`
	Gaps         []GapInfo          `json:"gaps,omitempty"`
	Sets         []SetInfo          `json:"sets,omitempty"`
	// JournalError is set when the journal could not be read.
	JournalError string `json:"journal_error,omitempty"`
}

// FilesystemStatus is one watched filesystem.
type FilesystemStatus struct {
	FilesystemInfo
	// PendingDirs counts distinct directories below its roots recorded
	// since the oldest cursor released by a backup set in this epoch (or
	// since the watcher started): what the next backup may rescan.
	PendingDirs int `json:"pending_dirs"`
}

// GapInfo is a gap record.
type GapInfo struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Path   string    `json:"path,omitempty"`
	Reason string    `json:"reason"`
}

// SetInfo is a registered backup set.
type SetInfo struct {
	Set    string    `json:"set"`
	Cursor Cursor    `json:"cursor"`
	Time   time.Time `json:"time"`
}

// Status reads watcher.json and the current epoch's journal.
func (j *Journal) Status() (Status, error) {
	st := Status{StateDir: j.l.dir}
	var ws WatcherState
	switch err := readJSON(j.l.watcher(), &ws); {
	case err == nil:
		st.Watcher = &ws
		st.Epoch = ws.Epoch
	case errors.Is(err, fs.ErrNotExist):
		return st, nil
	default:
		return st, fmt.Errorf("journal status: %w", err)
	}
	alive, err := watcherLocked(j.l.lock())
	if err != nil {
		return st, fmt.Errorf("journal status: %w", err)
	}
	st.Alive = alive
	st.Stalled = alive && ws.Stalled != ""
	st.Fresh = alive && !st.Stalled && j.now().Sub(ws.Heartbeat) < heartbeatStale
	sets, err := readSets(j.l)
	if err != nil {
		return st, fmt.Errorf("journal status: %w", err)
	}
	var since uint64
	first := true
	for _, s := range sets {
		st.Sets = append(st.Sets, SetInfo(s))
		if s.Cursor.Epoch == ws.Epoch && (first || s.Cursor.Seq < since) {
			since, first = s.Cursor.Seq, false
		}
	}
	segs, err := listSegments(j.l.epoch(ws.Epoch))
	if err != nil {
		st.JournalError = err.Error()
		return st, nil
	}
	st.Segments = len(segs)
	for _, s := range segs {
		st.JournalBytes += s.size
	}
	if len(segs) > 0 {
		st.FirstSeq = segs[0].first
	}
	pending := make([]map[string]struct{}, len(ws.Filesystems))
	for i := range pending {
		pending[i] = map[string]struct{}{}
	}
	after := uint64(0)
	if len(segs) > 0 && segs[0].first > 1 {
		after = segs[0].first - 1
	}
	err = scanJournal(j.l.epoch(ws.Epoch), after, ^uint64(0), func(r Record) error {
		st.LastSeq = r.Seq
		switch r.Kind {
		case RecGap:
			st.Gaps = append(st.Gaps, GapInfo{Seq: r.Seq, Time: r.Time, Path: r.Path, Reason: r.Text})
		case RecDirty:
			if r.Seq <= since {
				break
			}
			for i, f := range ws.Filesystems {
				if underAny(r.Path, f.Roots) {
					pending[i][r.Path] = struct{}{}
				}
			}
		}
		return nil
	})
	if err != nil {
		st.JournalError = err.Error()
	}
	for i, f := range ws.Filesystems {
		st.Filesystems = append(st.Filesystems, FilesystemStatus{FilesystemInfo: f, PendingDirs: len(pending[i])})
	}
	return st, nil
}
