package app

import (
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
)

// Event is something an operation reports while it runs: one of the types
// below. Front ends switch on the type.
type Event interface{ event() }

// Warning is something the user should know; the operation goes on.
type Warning struct {
	Message string `json:"message"`
}

// Failed is a part of an operation that failed while the rest went on
// (a snapshot record that could not be removed); the operation's error
// says how many.
type Failed struct {
	Message string `json:"message"`
}

// ScanStarted says how a backup scans and why, before it starts scanning.
// A backup whose journal scan gives up sends a second one for the full
// scan that replaces it, with Declined saying why.
type ScanStarted struct {
	Mode   string   `json:"mode"`
	Reason string   `json:"reason"`
	Parent *blob.ID `json:"parent,omitempty"`
	// Declined is why an earlier scan of this backup gave up.
	Declined string `json:"declined,omitempty"`
	// EstFiles and EstBytes are the parent snapshot's totals (0 without a
	// parent): what the backup will likely walk, for an ETA.
	EstFiles uint64 `json:"est_files,omitempty"`
	EstBytes uint64 `json:"est_bytes,omitempty"`
}

// Progress is a running backup's counters, sent at the interval the
// backup's options ask for and once at the end.
type Progress struct {
	Files     uint64        `json:"files"`
	Dirs      uint64        `json:"dirs"`
	Bytes     uint64        `json:"bytes"`
	BytesRead uint64        `json:"bytes_read"`
	Errors    uint64        `json:"errors"`
	Current   string        `json:"current,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	// Done marks the last report of a scan.
	Done bool `json:"done,omitempty"`
}

// Problem is damage or an unreadable object that check or verify found.
type Problem struct {
	check.Problem
}

// Log is a step of a long operation (prune) worth showing as it happens.
type Log struct {
	Message string `json:"message"`
}

func (Warning) event()     {}
func (Failed) event()      {}
func (ScanStarted) event() {}
func (Progress) event()    {}
func (Problem) event()     {}
func (Log) event()         {}

// emitter sends events to a handler, or nowhere.
type emitter func(Event)

func (e emitter) send(ev Event) {
	if e != nil {
		e(ev)
	}
}
