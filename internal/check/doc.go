// Package check verifies a repository: the structure check decodes every
// index file, compares the indexed packs with the packs in the backend,
// loads every snapshot and walks all their trees, checking that each blob
// they reference is indexed and that sizes and aggregates add up; the
// optional read-data check downloads packs (all or a subset), verifies their
// hashes and headers against the index and authenticates every blob.
//
// Problems are reported one by one and never stop the check; where the
// damage is known to affect files, the problem names their snapshot paths.
package check
