// Package repo is the storage layer of a Tidemark repository: it turns
// plaintext blobs into compressed, encrypted, deduplicated entries in pack
// files, keeps the index that maps blob IDs to pack locations, stores
// snapshot records, and manages keys and locks.
//
// Layout in the backend:
//
//	config            repository ID, version, chunker parameters (encrypted)
//	keys/<id>         the master key wrapped with a password (argon2id)
//	data/<xx>/<id>    packs of file content blobs
//	trees/<xx>/<id>   packs of directory tree blobs (cached locally)
//	index/<id>        which blobs each pack holds, at which offsets
//	snapshots/<id>    snapshot records
//	locks/<id>        locks of running clients
//
// Every stored object is named by the SHA-256 of its bytes and never
// modified, so a crash at any moment leaves at most unreferenced objects.
package repo
