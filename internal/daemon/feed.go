package daemon

import (
	"errors"

	"github.com/tidemark/tidemark/internal/changes"
)

// feed follows the change journal's position, so that each job can ask
// what was recorded since it last looked.
//
// It reads the position through Journal.Status, which scans the kept
// journal; internal/changes offers no cheaper way to learn the last
// sequence number yet (see the report of issue 12).
type feed struct {
	j     *changes.Journal
	epoch string
	kind  string
	last  uint64
	// up: a watcher holds the journal and its heartbeat is fresh.
	up   bool
	note string
}

// poll reads the journal's position. It reports a new epoch when the
// watcher (re)started since the last poll.
func (f *feed) poll() (newEpoch bool, err error) {
	st, err := f.j.Status()
	if err != nil {
		f.up, f.note = false, err.Error()
		return false, err
	}
	switch {
	case st.Watcher == nil:
		f.up, f.note = false, "no watcher has run in the state directory yet"
	case !st.Alive:
		f.up, f.note = false, "watcher not running"
	case st.Stalled:
		f.up, f.note = false, "watcher stalled: "+st.Watcher.Stalled
	case !st.Fresh:
		f.up, f.note = false, "watcher not responding"
	default:
		f.up, f.note = true, st.Watcher.Kind+": "+st.Watcher.Reason
	}
	if st.Watcher == nil || st.Epoch == "" {
		return false, nil
	}
	if st.JournalError != "" {
		return false, errors.New("change journal: " + st.JournalError)
	}
	if st.Epoch != f.epoch {
		f.epoch, f.kind, f.last = st.Epoch, st.Watcher.Kind, st.LastSeq
		return true, nil
	}
	if st.LastSeq > f.last {
		f.last = st.LastSeq
	}
	return false, nil
}

func (f *feed) cursor(seq uint64) changes.Cursor {
	return changes.Cursor{Kind: f.kind, Epoch: f.epoch, Seq: seq}
}

// since is what was recorded below roots after seq, up to the last
// position polled.
func (f *feed) since(seq uint64, roots []string) (changes.Delta, error) {
	return f.j.Since(f.cursor(seq), f.cursor(f.last), roots)
}
