package changes

import "time"

// WatchOptions configure Watch.
type WatchOptions struct {
	// Log receives what the watcher does and why (nil: silent).
	Log func(format string, args ...any)
	// ForceInotify uses inotify even when fanotify would work.
	ForceInotify bool
	// SegmentBytes is the journal segment size (default 4 MiB): the unit
	// of compaction.
	SegmentBytes int64
	// MaxJournalBytes bounds the current epoch's journal (default 1 GiB):
	// beyond it the oldest segments are deleted even if a backup set still
	// needs them, which then gets a "records already truncated" gap
	// instead of filling the disk.
	MaxJournalBytes int64

	// beforeRead, if set, is called before each read of an event queue
	// (tests block in it to let the kernel queue overflow).
	beforeRead func(source string)
	// beforeEvent, if set, is called before each event is handled, in the
	// event goroutine (tests slow it down or make it hang).
	beforeEvent func(source string)
	// stallAfter replaces the watchdog's limit (tests).
	stallAfter time.Duration
	// ready, if set, is called once the watcher records changes.
	ready func()
}
