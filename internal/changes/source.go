package changes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// KindExternal is the kind of an external list of changed paths
// (--changed-from). It keeps no record of its own: the user vouches that
// the list names everything that changed since the parent snapshot.
const KindExternal = "external list"

// KindJournal is the kind of the watcher's journal as a Source; its
// cursors say which watcher (KindFanotify, KindInotify) recorded them.
const KindJournal = "journal"

// Source is anything that can say what changed in the filesystem: the
// watcher's journal (fanotify or inotify), an external list, and later the
// filesystems' own records (btrfs generations, the NTFS USN journal,
// FSEvents). The backup's planner talks to every source through this
// interface and never needs to know which one it has.
type Source interface {
	// Kind names the source: KindJournal, KindExternal.
	Kind() string
	// Describe says what the source is, for the reason a backup records:
	// "change journal", "changed paths from FILE (N entries)".
	Describe() string
	// Fence proves that every change made before the call is recorded and
	// returns the position after them. It returns a *GapError when no
	// record can be proved (for the journal: no healthy watcher covers the
	// roots). A source without a record of its own returns the zero
	// Cursor.
	Fence(ctx context.Context, roots []string) (Cursor, error)
	// Since returns what may have changed between two cursors (from: the
	// parent snapshot's, zero when it has none; to: from Fence),
	// restricted to roots, or a *GapError saying why the record between
	// them is not provably complete. A cursor of another source or
	// identity is a gap, never misread.
	Since(ctx context.Context, from, to Cursor, roots []string) (Delta, error)
	// Release says that the backup set set (a hex string) no longer needs
	// records up to c, so they may be compacted away.
	Release(set string, c Cursor) error
}

// DefaultFenceTimeout bounds the wait for the watcher to record a fence
// while it shows no progress; an idle healthy watcher answers within its
// flush interval. A watcher that makes progress (a loaded machine, a
// backlog of events) is waited for up to MaxFenceWait.
const DefaultFenceTimeout = 10 * time.Second

// MaxFenceWait bounds the wait for a fence in all, however busy the
// watcher is.
const MaxFenceWait = 5 * time.Minute

// JournalSource returns the watcher's journal as a Source; fenceTimeout
// bounds the wait for the watcher to record a fence while it shows no
// progress (see Journal.Fence).
//
// Its Fence also looks for files in the roots that live processes have
// mapped shared and writable, and its Since adds them to the delta of that
// fence: stores through such a mapping raise no event at all. The search
// runs in the backup, just before the fence marker is placed, rather than
// in the watcher when it reads the marker: a mapping still live then is
// found, and one released earlier has queued its close-write event ahead
// of the marker, so the journal has it. A search after the marker would
// miss a mapping released between the marker's creation and its reading,
// whose close-write event lands after the fence. The backup can read the
// mappings of its user's processes, and of every process as root; see
// the README for the rest.
func JournalSource(j *Journal, fenceTimeout time.Duration) Source {
	return &journalSource{j: j, timeout: fenceTimeout}
}

type journalSource struct {
	j       *Journal
	timeout time.Duration

	// mu guards the fence last taken and the mapped files found then.
	mu     sync.Mutex
	fenced Cursor
	mapped Delta
}

func (s *journalSource) Kind() string { return KindJournal }

func (s *journalSource) Describe() string { return "change journal" }

func (s *journalSource) Fence(ctx context.Context, roots []string) (Cursor, error) {
	mapped, _, err := mappedChanges(roots)
	if err != nil {
		return Cursor{}, gapf("journal error: %v", err)
	}
	c, err := s.j.Fence(ctx, roots, s.timeout)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	s.fenced, s.mapped = c, mapped
	s.mu.Unlock()
	return c, nil
}

func (s *journalSource) Since(_ context.Context, from, to Cursor, roots []string) (Delta, error) {
	d, err := s.j.Since(from, to, roots)
	if err != nil {
		return d, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if to == s.fenced {
		d = d.merge(s.mapped.within(roots))
	}
	return d, nil
}

func (s *journalSource) Release(set string, c Cursor) error { return s.j.Release(set, c) }

// ExternalList returns a Source that answers with paths someone else
// recorded (one absolute path per entry, e.g. from watchman); name says
// where they came from. Each path's directory and the path itself (in
// case it is a directory whose entries changed) are listed again.
func ExternalList(name string, paths []string) Source {
	return externalList{name: name, paths: paths}
}

type externalList struct {
	name  string
	paths []string
}

func (l externalList) Kind() string { return KindExternal }

// Fence has nothing to wait for: the list is complete when it is given.
func (l externalList) Fence(context.Context, []string) (Cursor, error) { return Cursor{}, nil }

// Since ignores the cursors: the list is vouched for relative to the
// parent snapshot.
func (l externalList) Since(context.Context, Cursor, Cursor, []string) (Delta, error) {
	seen := map[string]bool{}
	dirs := []string{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			dirs = append(dirs, p)
		}
	}
	for _, p := range l.paths {
		p = filepath.Clean(p)
		add(p)
		add(filepath.Dir(p))
	}
	sort.Strings(dirs)
	return Delta{Dirs: dirs}, nil
}

func (l externalList) Release(string, Cursor) error { return nil }

func (l externalList) Describe() string {
	return fmt.Sprintf("changed paths from %s (%d entries)", l.name, len(l.paths))
}

// ReadList reads a list of changed paths (--changed-from): absolute paths,
// one per line; empty lines are skipped.
func ReadList(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--changed-from: %w", err)
	}
	out := []string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if !filepath.IsAbs(line) {
			return nil, fmt.Errorf("--changed-from %s line %d: %q is not an absolute path", name, i+1, line)
		}
		out = append(out, line)
	}
	return out, nil
}
