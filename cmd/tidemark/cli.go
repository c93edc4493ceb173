package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/location"
	"github.com/tidemark/tidemark/internal/crypto"
	"golang.org/x/term"
)

// cli holds the global flags and output streams; there are no globals.
type cli struct {
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
	memProfile  string
	peakHeap    *peakHeap
	backendOpt  location.Options
}

func newCLI(out, errOut io.Writer) *cli { return &cli{out: out, errOut: errOut} }

func (a *cli) root() *cobra.Command {
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
	f.StringVar(&a.memProfile, "mem-profile", "", "write a heap profile taken at the largest live heap to this file")
	_ = f.MarkHidden("mem-profile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return a.startProfile() }
	root.PersistentPostRun = func(*cobra.Command, []string) { a.stopProfile() }
	root.AddCommand(a.initCmd(), a.backupCmd(), a.snapshotsCmd(), a.lsCmd(), a.diffCmd(), a.statsCmd(),
		a.restoreCmd(), a.checkCmd(), a.unlockCmd(), a.forgetCmd(), a.pruneCmd(), a.historyCmd(), a.demoCmd(), a.watchCmd(), a.journalCmd(), a.keyCmd())
	root.AddCommand(a.verifyCmd(), a.repairCmd(), a.cacheCmd(), a.tagCmd(), a.versionCmd(), a.generateCmd())
	root.AddCommand(a.runCmd(), a.statusCmd(), a.configCmd())
	root.AddCommand(a.findCmd(), a.dumpCmd())
	a.setVersion(root)
	return root
}

func (a *cli) startProfile() error {
	if a.memProfile != "" || os.Getenv("TIDEMARK_PEAK_HEAP") == "1" {
		a.peakHeap = startPeakHeap(a.memProfile)
	}
	if a.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	return pprof.StartCPUProfile(f)
}

func (a *cli) stopProfile() {
	if a.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if a.peakHeap != nil {
		a.peakHeap.finish(os.Stderr)
	}
}

func (a *cli) printError(err error, code int) {
	if a.jsonOut {
		_ = json.NewEncoder(a.errOut).Encode(struct {
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}{err.Error(), code})
		return
	}
	fmt.Fprintf(a.errOut, "tidemark: %s\n", displayText(err.Error()))
}

func (a *cli) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *cli) printf(format string, args ...any) {
	if !a.quiet && !a.jsonOut {
		fmt.Fprintf(a.out, format, args...)
	}
}

// password reads the password from --password-file, TIDEMARK_PASSWORD, or
// a prompt on the terminal (twice when confirm is set).
func (a *cli) password(confirm bool) ([]byte, error) {
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

// options turns the global flags into the application layer's options.
func (a *cli) options(confirmPassword bool) app.Options {
	opt := app.Options{Repository: a.repoLoc, CacheDir: a.cacheDir, NoCache: a.noCache, KeyCache: !a.noKeyCache,
		Compression: a.compression, Backend: a.backendOpt, Events: a.report}
	opt.Password = func() ([]byte, error) { return a.password(confirmPassword) }
	opt.Backend.Retry = func(op string, h backend.Handle, err error, attempt int, wait time.Duration) {
		if !a.quiet {
			fmt.Fprintf(a.errOut, "warning: %s %s failed (attempt %d), retrying in %v: %v\n", op, h, attempt, wait.Round(time.Millisecond), err)
		}
	}
	if a.insecureKDF {
		opt.KDF = func() (crypto.KDFParams, error) {
			p, err := crypto.DefaultKDFParams()
			p.Time, p.Memory, p.Threads = 1, 8*1024, 1
			return p, err
		}
	}
	return opt
}

// open opens the repository named by the flags.
func (a *cli) open(ctx context.Context) (*app.Repo, error) {
	return app.Open(ctx, a.options(false))
}

// report prints the events every command shows the same way: warnings,
// failures and problems on stderr (problems not with --json, where the
// result lists them), log lines unless quiet.
func (a *cli) report(ev app.Event) {
	switch e := ev.(type) {
	case app.Warning:
		fmt.Fprintf(a.errOut, "warning: %s\n", displayText(e.Message))
	case app.Failed:
		fmt.Fprintf(a.errOut, "error: %s\n", displayText(e.Message))
	case app.Problem:
		if !a.jsonOut {
			where := displayText(e.Object)
			if e.Path != "" {
				where += " (" + displayPath(e.Path) + ")"
			}
			fmt.Fprintf(a.errOut, "problem: %s: %s: %s\n", e.Kind, where, displayText(e.Err))
		}
	case app.Log:
		if !a.quiet && !a.jsonOut {
			fmt.Fprintln(a.errOut, displayText(e.Message))
		}
	}
}

func runE(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return fn(cmd.Context(), args) }
}
