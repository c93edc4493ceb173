package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/cache"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/state"
	"golang.org/x/term"
)

// app holds the global flags and output streams; there are no globals.
type app struct {
	out, errOut  io.Writer
	repoLoc      string
	passwordFile string
	cacheDir     string
	noCache      bool
	noKeyCache   bool
	jsonOut      bool
	quiet        bool
	compression  string
	// insecureKDF makes new keys cheap to derive; for tests only.
	insecureKDF bool
	cpuProfile  string
	backendOpt  location.Options
}

func newApp(out, errOut io.Writer) *app { return &app{out: out, errOut: errOut} }

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "tidemark",
		Short:         "Backups whose incremental cost is proportional to what changed",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVarP(&a.repoLoc, "repo", "r", os.Getenv("TIDEMARK_REPOSITORY"), "repository location (env TIDEMARK_REPOSITORY)")
	f.StringVar(&a.passwordFile, "password-file", os.Getenv("TIDEMARK_PASSWORD_FILE"), "read the password from this file (env TIDEMARK_PASSWORD_FILE)")
	f.StringVar(&a.cacheDir, "cache-dir", "", "local cache directory (default $XDG_CACHE_HOME/tidemark)")
	f.BoolVar(&a.noCache, "no-cache", false, "do not use a local cache or state database")
	f.BoolVar(&a.noKeyCache, "no-key-cache", false, "do not keep the unlocked key in the kernel keyring (15 minutes, renewed on use) between runs")
	f.BoolVar(&a.jsonOut, "json", false, "print machine-readable JSON")
	f.BoolVarP(&a.quiet, "quiet", "q", false, "print only errors")
	f.StringVar(&a.compression, "compression", "default", "compression: off, fastest, default, better")
	f.IntVar(&a.backendOpt.UploadKiB, "limit-upload", 0, "limit uploads to this many KiB/s (0: unlimited)")
	f.IntVar(&a.backendOpt.DownloadKiB, "limit-download", 0, "limit downloads to this many KiB/s (0: unlimited)")
	f.StringVar(&a.backendOpt.S3Region, "s3-region", "", "S3 region (default AWS_REGION, AWS_DEFAULT_REGION, else asked from the server)")
	f.StringVar(&a.backendOpt.S3BucketLookup, "s3-bucket-lookup", "auto", "S3 bucket addressing: auto, path (host/bucket) or dns (bucket.host)")
	f.BoolVar(&a.backendOpt.SFTPInsecureHostKey, "sftp-insecure-host-key", false, "accept an SFTP host key that known_hosts does not list (insecure)")
	f.BoolVar(&a.insecureKDF, "insecure-kdf", false, "derive keys with minimal cost (tests only)")
	_ = f.MarkHidden("insecure-kdf")
	f.StringVar(&a.cpuProfile, "cpu-profile", "", "write a CPU profile to this file")
	_ = f.MarkHidden("cpu-profile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return a.startProfile() }
	root.PersistentPostRun = func(*cobra.Command, []string) { a.stopProfile() }
	root.AddCommand(a.initCmd(), a.backupCmd(), a.snapshotsCmd(), a.lsCmd(), a.diffCmd(), a.statsCmd(),
		a.restoreCmd(), a.checkCmd(), a.unlockCmd(), a.forgetCmd(), a.pruneCmd(), a.historyCmd(), a.demoCmd(), a.watchCmd(), a.journalCmd(), a.keyCmd())
	root.AddCommand(a.verifyCmd(), a.repairCmd(), a.cacheCmd())
	return root
}

func (a *app) startProfile() error {
	if a.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	return pprof.StartCPUProfile(f)
}

func (a *app) stopProfile() {
	if a.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
}

func (a *app) printError(err error, code int) {
	if a.jsonOut {
		_ = json.NewEncoder(a.errOut).Encode(map[string]any{"error": err.Error(), "exit_code": code})
		return
	}
	fmt.Fprintf(a.errOut, "tidemark: %v\n", err)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) printf(format string, args ...any) {
	if !a.quiet && !a.jsonOut {
		fmt.Fprintf(a.out, format, args...)
	}
}

// password reads the password from --password-file, TIDEMARK_PASSWORD, or
// a prompt on the terminal (twice when confirm is set).
func (a *app) password(confirm bool) ([]byte, error) {
	if a.passwordFile != "" {
		return readPasswordFile(a.passwordFile, "password file")
	}
	if pw, ok := os.LookupEnv("TIDEMARK_PASSWORD"); ok {
		if pw == "" {
			return nil, errors.New("TIDEMARK_PASSWORD is set but empty")
		}
		return []byte(pw), nil
	}
	return promptPassword("Repository password: ", confirm,
		"no password given: use --password-file, TIDEMARK_PASSWORD_FILE or TIDEMARK_PASSWORD, or run on a terminal")
}

// readPasswordFile reads a password from the first line of a file.
func readPasswordFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return nil, fmt.Errorf("%s %s is empty", what, path)
	}
	return []byte(pw), nil
}

// promptPassword asks on the terminal (twice when confirm is set); without
// a terminal it fails with noTTY.
func promptPassword(prompt string, confirm bool, noTTY string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New(noTTY)
	}
	defer tty.Close()
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(tty, prompt)
		pw, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		return pw, nil
	}
	pw, err := read(prompt)
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	if confirm {
		again, err := read("Repeat password: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(pw) {
			return nil, errors.New("passwords do not match")
		}
	}
	return pw, nil
}

func (a *app) location() (string, error) {
	if a.repoLoc == "" {
		return "", fmt.Errorf("no repository given: use -r/--repo or TIDEMARK_REPOSITORY: %w", repo.ErrNoRepository)
	}
	loc := a.repoLoc
	if location.Kind(loc) == "local" {
		loc = strings.TrimPrefix(loc, "local:")
		if scheme, _, ok := strings.Cut(loc, ":"); ok && !strings.ContainsAny(scheme, "/.") {
			return "", fmt.Errorf("repository %q: unknown backend %q (use a directory, sftp:user@host:/path or s3:https://host/bucket)", a.repoLoc, scheme)
		}
	}
	return loc, nil
}

// backendOptions returns the backend settings, reporting retries as
// warnings.
func (a *app) backendOptions() location.Options {
	opt := a.backendOpt
	opt.Retry = func(op string, h backend.Handle, err error, attempt int, wait time.Duration) {
		if !a.quiet {
			fmt.Fprintf(a.errOut, "warning: %s %s failed (attempt %d), retrying in %v: %v\n", op, h, attempt, wait.Round(time.Millisecond), err)
		}
	}
	return opt
}

func (a *app) repoOptions() repo.Options {
	opt := repo.Options{Compression: a.compression, KeyCache: !a.noKeyCache}
	if a.insecureKDF {
		opt.KDF = func() (crypto.KDFParams, error) {
			p, err := crypto.DefaultKDFParams()
			p.Time, p.Memory, p.Threads = 1, 8*1024, 1
			return p, err
		}
	}
	if !a.noCache {
		opt.CacheDir = a.repoCacheDir
	}
	return opt
}

func (a *app) repoCacheDir(id string) (string, error) {
	root := a.cacheDir
	if root == "" {
		var err error
		if root, err = cache.DefaultDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(root, id), nil
}

// openRepo opens the repository named by the flags.
func (a *app) openRepo(ctx context.Context) (*repo.Repository, error) {
	loc, err := a.location()
	if err != nil {
		return nil, err
	}
	be, err := location.Open(ctx, loc, a.backendOptions())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("repository %s does not exist: %w", loc, repo.ErrNoRepository)
		}
		return nil, err
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.Config}); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, repo.ErrNoRepository)
	}
	pw, err := a.password(false)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, pw, a.repoOptions())
	if err != nil {
		return nil, err
	}
	for _, e := range r.IndexErrors() {
		fmt.Fprintf(a.errOut, "warning: skipping damaged index file: %v (run `tidemark check`)\n", e)
	}
	return r, nil
}

// openLocked opens the repository and takes a lock of the given mode;
// release unlocks and closes it.
func (a *app) openLocked(ctx context.Context, mode repo.LockMode, command string) (r *repo.Repository, lock *repo.Lock, release func(), err error) {
	if r, err = a.openRepo(ctx); err != nil {
		return nil, nil, nil, err
	}
	if lock, err = r.LockMode(ctx, mode, command); err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	return r, lock, func() { lock.Unlock(); r.Close() }, nil
}

// openState opens the local state database of r, or returns nil with
// --no-cache.
func (a *app) openState(r *repo.Repository) (*state.DB, error) {
	if a.noCache {
		return nil, nil
	}
	dir, err := a.repoCacheDir(r.Config().ID)
	if err != nil {
		return nil, err
	}
	return state.Open(filepath.Join(dir, "state.db"))
}

func runE(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return fn(cmd.Context(), args) }
}
