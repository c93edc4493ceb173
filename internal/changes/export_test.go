package changes

// Accessors only the tests need.

func (c *lru) len() int { return c.ll.Len() }

func (w *journalWriter) lastSeq() uint64 { return w.next - 1 }
