// Package archive runs the scan and archive stages of a backup: it walks the
// roots, compares each entry with the parent snapshot and the local stat
// cache, reads only the files that may have changed (chunk, hash, dedup,
// compress, encrypt, pack), and builds the snapshot's Merkle tree bottom-up.
//
// The walker lists directories in depth-first order on one goroutine while
// a pool of workers reads files; a directory's tree is saved by whichever
// goroutine completes its last child, so walking, reading and uploading
// overlap and memory is bounded by the directories in flight, not by the
// size of the tree.
//
// The files follow those roles: walk.go (list a directory, handle each
// entry), node.go (a tree entry from a stat, in one place), compare.go
// (what is unchanged since the parent), files.go (the workers that read
// files), tree.go (finishing a directory's tree), prefetch.go (listings
// made ahead on other cores) and journal.go (journal scans: which
// directories to visit, reuse or only descend through, and when to
// decline).
package archive
