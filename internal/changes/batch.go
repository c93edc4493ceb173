package changes

// batch collects records between two journal writes, dropping duplicates:
// a directory changed a thousand times in 100 ms is recorded once.
type batch struct {
	recs []Record
	seen map[batchKey]struct{}
}

type batchKey struct {
	kind       RecordKind
	path, text string
}

// add appends r unless an identical record is already in the batch. A
// fence ends the coalescing window: a record after a fence must stay after
// it, or the next interval would miss it.
func (b *batch) add(r Record) {
	switch r.Kind {
	case RecFence, RecStart:
		b.recs = append(b.recs, r)
		clear(b.seen)
		return
	}
	k := batchKey{r.Kind, r.Path, r.Text}
	if _, dup := b.seen[k]; dup {
		return
	}
	if b.seen == nil {
		b.seen = make(map[batchKey]struct{})
	}
	b.seen[k] = struct{}{}
	b.recs = append(b.recs, r)
}

// take returns the collected records and empties the batch.
func (b *batch) take() []Record {
	recs := b.recs
	b.recs = nil
	clear(b.seen)
	return recs
}

func (b *batch) len() int { return len(b.recs) }
