package daemon

import (
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/app"
)

// Event types.
const (
	// EventLog is a line of the daemon's log.
	EventLog = "log"
	// EventState is a job whose status changed (Status is set).
	EventState = "state"
	// EventProgress is a running backup's counters (Progress is set).
	EventProgress = "progress"
	// EventOperation is an operation that started or finished
	// (Operation is set).
	EventOperation = "operation"
)

// Event is what the daemon reports as it runs: its log, and for the API's
// stream, state changes, progress and operations.
type Event struct {
	Time      time.Time     `json:"time"`
	Type      string        `json:"type"`
	Job       string        `json:"job,omitempty"`
	Level     string        `json:"level,omitempty"` // for logs: info, warning, error
	Message   string        `json:"message,omitempty"`
	Status    *JobStatus    `json:"status,omitempty"`
	Progress  *app.Progress `json:"progress,omitempty"`
	Operation *Operation    `json:"operation,omitempty"`
}

// hub fans events out to subscribers. A subscriber too slow to keep up
// loses events rather than slowing the daemon down.
type hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

func (h *hub) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan Event]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.mu.Unlock()
			close(ch)
		})
	}
}

func (h *hub) send(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}
