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
package archive
