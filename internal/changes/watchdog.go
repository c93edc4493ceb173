package changes

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// activity is what one part of the watcher (its main loop, each change
// source) tells the watchdog: what it is busy with, since when, and a
// count of steps that advances as it gets things done. The watchdog runs
// apart from all of them, so it can say that one is stuck while it is.
type activity struct {
	name  string
	steps atomic.Uint64

	mu    sync.Mutex
	doing string // "" when idle (waiting for events or the next tick)
	since time.Time
}

// begin marks the start of a piece of work.
func (a *activity) begin(doing string) {
	a.mu.Lock()
	a.doing, a.since = doing, time.Now()
	a.mu.Unlock()
}

// end marks the work done; it counts as a step.
func (a *activity) end() {
	a.steps.Add(1)
	a.mu.Lock()
	a.doing = ""
	a.mu.Unlock()
}

// step counts progress inside a long piece of work (a directory walked).
func (a *activity) step() { a.steps.Add(1) }

func (a *activity) state() (doing string, since time.Time, steps uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.doing, a.since, a.steps.Load()
}

// stallAfter is how long a part of the watcher may be busy without taking
// a step before the watchdog calls the watcher stalled. A source resolves
// any one handle within resolveTime and walks a directory in far less, so
// only a system call that hangs (a dead network filesystem, a disk that no
// longer answers) or a bug gets there.
const stallAfter = 10 * time.Second

// watchdog decides, from samples taken about once a second, whether a part
// of the watcher has been busy for its limit without taking a step.
type watchdog struct {
	after time.Duration
	marks map[*activity]stepMark
}

type stepMark struct {
	steps uint64
	at    time.Time // when steps was first seen at this value
}

func newWatchdog(after time.Duration) *watchdog {
	return &watchdog{after: after, marks: map[*activity]stepMark{}}
}

// check returns why the watcher is stalled, or "" when it is not.
func (d *watchdog) check(now time.Time, acts []*activity) string {
	reason := ""
	for _, a := range acts {
		doing, since, steps := a.state()
		m, ok := d.marks[a]
		if !ok || m.steps != steps {
			m = stepMark{steps: steps, at: now}
			d.marks[a] = m
		}
		if doing == "" || reason != "" {
			continue
		}
		from := m.at
		if since.After(from) {
			from = since
		}
		if stuck := now.Sub(from); stuck >= d.after {
			reason = fmt.Sprintf("%s stuck for %v while %s", a.name, stuck.Round(time.Second), doing)
		}
	}
	return reason
}
