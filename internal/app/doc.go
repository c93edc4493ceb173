// Package app is Tidemark's application layer. It opens a repository with
// its local cache and state database from one Options struct, and offers
// every operation (backup, restore, forget, prune, check, verify, diff, ls,
// stats, tag, history, cache rebuild, repair, keys, unlock, version) as a
// call with typed options, a typed result and a typed stream of events.
// Commands that pick snapshots take a snapshot.Filter (restic's --host,
// --path, --tag), within which "latest" is resolved.
//
// The command line is one front end of these calls (flags -> options ->
// call -> print); the continuous-backup daemon and its web API are others.
// So nothing here prints, exits or keeps global state: several
// repositories may be open at once in one long-running process, every call
// honours its context, and results carry JSON tags that are the stable
// machine-readable shapes the CLI's --json prints.
package app
