package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/state"
)

// Errors a front end maps to exit codes or messages.
var (
	// ErrNoRepository: the location holds no repository (or none given).
	ErrNoRepository = repo.ErrNoRepository
	// ErrLocked: another client holds a conflicting lock.
	ErrLocked = repo.ErrLocked
	// ErrWrongPassword: no key opens with the password.
	ErrWrongPassword = repo.ErrWrongPassword
)

// Options say which repository to open and how.
type Options struct {
	// Repository is a location: a directory (or local:DIR),
	// sftp:user@host:/path, sftp://user@host:port/path or
	// s3:https://host/bucket[/prefix].
	Repository string
	// Password returns the repository's password; it is called once per
	// Open or Init.
	Password func() ([]byte, error)
	// CacheDir is the root of the local caches (default
	// $XDG_CACHE_HOME/tidemark); each repository has a directory in it
	// named by its ID, holding cached objects and the state database.
	CacheDir string
	// NoCache uses neither a local cache nor a state database.
	NoCache bool
	// KeyCache keeps the unlocked key in the kernel keyring between runs.
	KeyCache bool
	// Compression is off, fastest, default or better ("" is default).
	Compression string
	// Backend holds the backends' settings (rate limits, S3 and SFTP
	// options, the retry callback).
	Backend location.Options
	// KDF, if set, replaces the key derivation parameters of new keys
	// (tests use cheap ones).
	KDF func() (crypto.KDFParams, error)
	// Events receives warnings found while opening (damaged index files)
	// and while resolving "latest" (unreadable snapshot records); nil
	// discards them.
	Events func(Event)
}

// Repo is an open repository with its local cache and state database.
// Its methods may be called from several goroutines; each takes the locks
// its operation needs.
type Repo struct {
	opt      Options
	loc      string
	password []byte
	r        *repo.Repository

	stOnce sync.Once
	st     *state.DB
	stErr  error
}

// location checks and returns the repository location.
func (o Options) location() (string, error) {
	if o.Repository == "" {
		return "", fmt.Errorf("no repository given: use -r/--repo or TIDEMARK_REPOSITORY: %w", repo.ErrNoRepository)
	}
	loc := o.Repository
	if location.Kind(loc) == "local" {
		loc = strings.TrimPrefix(loc, "local:")
		if scheme, _, ok := strings.Cut(loc, ":"); ok && !strings.ContainsAny(scheme, "/.") {
			return "", fmt.Errorf("repository %q: unknown backend %q (use a directory, sftp:user@host:/path or s3:https://host/bucket)", o.Repository, scheme)
		}
	}
	return loc, nil
}

func (o Options) repoOptions() repo.Options {
	opt := repo.Options{Compression: o.Compression, KeyCache: o.KeyCache, KDF: o.KDF}
	if opt.Compression == "" {
		opt.Compression = "default"
	}
	if !o.NoCache {
		opt.CacheDir = o.repoCacheDir
	}
	return opt
}

func (o Options) repoCacheDir(id string) (string, error) {
	root := o.CacheDir
	if root == "" {
		var err error
		if root, err = cache.DefaultDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(root, id), nil
}

func (o Options) emit(e Event) {
	if o.Events != nil {
		o.Events(e)
	}
}

func (o Options) password() ([]byte, error) {
	if o.Password == nil {
		return nil, errors.New("no password given")
	}
	return o.Password()
}

// Open opens the repository the options name.
func Open(ctx context.Context, opt Options) (*Repo, error) {
	loc, err := opt.location()
	if err != nil {
		return nil, err
	}
	be, err := location.Open(ctx, loc, opt.Backend)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("repository %s does not exist: %w", loc, repo.ErrNoRepository)
		case errors.Is(err, local.ErrNotDirectory):
			return nil, fmt.Errorf("%w: %w", err, repo.ErrNoRepository)
		}
		return nil, err
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.Config}); err != nil {
		// Only a config file that is not there means no repository: a
		// server that does not answer must not send the user to init.
		if errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", loc, repo.ErrNoRepository)
		}
		return nil, fmt.Errorf("open repository %s: read its config file: %w", loc, err)
	}
	pw, err := opt.password()
	if err != nil {
		return nil, err
	}
	a := &Repo{opt: opt, loc: loc, password: pw}
	if err := a.open(ctx, be); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Repo) open(ctx context.Context, be backend.Backend) error {
	r, err := repo.Open(ctx, be, a.password, a.opt.repoOptions())
	if err != nil {
		return err
	}
	for _, e := range r.IndexErrors() {
		a.opt.emit(Warning{Message: fmt.Sprintf("skipping damaged index file: %v (run `tidemark check`)", e)})
	}
	a.r = r
	return nil
}

// reopen opens the repository afresh (after its index was rebuilt).
func (a *Repo) reopen(ctx context.Context) error {
	be, err := location.Open(ctx, a.loc, a.opt.Backend)
	if err != nil {
		return err
	}
	a.r.Close()
	return a.open(ctx, be)
}

// Init creates a repository at the options' location and opens it.
func Init(ctx context.Context, opt Options) (*Repo, error) {
	loc, err := opt.location()
	if err != nil {
		return nil, err
	}
	pw, err := opt.password()
	if err != nil {
		return nil, err
	}
	be, err := location.Create(ctx, loc, opt.Backend)
	if err != nil {
		return nil, err
	}
	r, err := repo.Init(ctx, be, pw, opt.repoOptions())
	if err != nil {
		return nil, err
	}
	return &Repo{opt: opt, loc: loc, password: pw, r: r}, nil
}

// Close releases the repository and the state database.
func (a *Repo) Close() error {
	err := a.r.Close()
	if a.st != nil {
		if e := a.st.Close(); err == nil {
			err = e
		}
	}
	return err
}

// ID is the repository's ID.
func (a *Repo) ID() string { return a.r.Config().ID }

// Location is where the repository lives, as given.
func (a *Repo) Location() string { return a.loc }

// CacheDir is this repository's local cache directory ("" with NoCache).
func (a *Repo) CacheDir() (string, error) {
	if a.opt.NoCache {
		return "", nil
	}
	return a.opt.repoCacheDir(a.ID())
}

// state returns the local state database, nil with NoCache.
func (a *Repo) state() (*state.DB, error) {
	if a.opt.NoCache {
		return nil, nil
	}
	a.stOnce.Do(func() {
		dir, err := a.CacheDir()
		if err != nil {
			a.stErr = err
			return
		}
		a.st, a.stErr = state.Open(filepath.Join(dir, "state.db"))
	})
	return a.st, a.stErr
}

// lock takes a lock of the given mode for command.
func (a *Repo) lock(ctx context.Context, mode repo.LockMode, command string) (*repo.Lock, error) {
	return a.r.LockMode(ctx, mode, command)
}

// RemoveStaleLocks removes the locks of clients that are gone (all locks
// with all) and returns how many it removed.
func (a *Repo) RemoveStaleLocks(ctx context.Context, all bool) (int, error) {
	return a.r.RemoveStaleLocks(ctx, all)
}
