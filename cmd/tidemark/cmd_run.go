package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/api"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/daemon"
	"github.com/tidemark/tidemark/internal/version"
)

func (a *cli) runCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run [--config FILE]",
		Short: "Back up continuously: the jobs of a configuration file, soon after their files change",
		Long: `Run is continuous backup: one process per machine that watches the paths of
every job of the configuration file (one fanotify or inotify watcher for all)
and backs a job up when its changes have settled (trigger.settle), never more
often than trigger.min_interval, at the latest trigger.max_delay after a
change under constant churn, and after trigger.safety_net without changes.
It applies the forced-full-scan policy, runs forget and prune on the
retention schedule and verify within its budget, alerts when changes stay
unprotected longer than alert.after or a backup fails, runs the hooks, and
keeps an operation log in the state directory.

It serves a JSON API with a bearer token (server.listen, loopback unless TLS;
the token is in server.token_file, created when missing): tidemark status
reads it. SIGHUP reloads the configuration (a file with errors is refused and
the running one kept); SIGTERM or SIGINT stops it, abandoning operations
still running after server.stop_timeout.

See the README for the configuration file, and contrib/tidemark.service.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error { return a.runDaemon(ctx, configPath(path)) }),
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (default $TIDEMARK_CONFIG, else /etc/tidemark/tidemark.toml as root, else ~/.config/tidemark/tidemark.toml)")
	return cmd
}

// configPath is the configuration file: the flag, TIDEMARK_CONFIG, or the
// system's or the user's default.
func configPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("TIDEMARK_CONFIG"); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		return "/etc/tidemark/tidemark.toml"
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "tidemark", "tidemark.toml")
	}
	return "tidemark.toml"
}

// tokenFile is where the API token is: the configured file, else
// api-token in the state directory.
func tokenFile(s config.Server, stateDir string) string {
	if s.TokenFile != "" {
		return s.TokenFile
	}
	return filepath.Join(stateDir, "api-token")
}

// ensureToken creates a token file with a random token when there is
// none, readable by its owner only.
func ensureToken(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("API token: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("API token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("API token: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(b[:]) + "\n"); err != nil {
		f.Close()
		return false, fmt.Errorf("API token: %w", err)
	}
	return true, f.Close()
}

// apiRunner keeps the API server in step with the configuration.
type apiRunner struct {
	d        *daemon.Daemon
	mu       sync.Mutex
	token    string
	settings config.Server
	tokenAt  string
	srv      *api.Server
}

func (r *apiRunner) currentToken() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.token
}

// apply starts, restarts or stops the server for s, and reads the token
// again.
func (r *apiRunner) apply(s config.Server) error {
	if s.Listen == "" {
		r.close()
		return nil
	}
	path := tokenFile(s, r.d.StateDir())
	if _, err := ensureToken(path); err != nil {
		return err
	}
	tok, err := api.ReadToken(path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.token, r.tokenAt = tok, path
	same := r.srv != nil && r.settings.Listen == s.Listen && r.settings.TLSCert == s.TLSCert && r.settings.TLSKey == s.TLSKey
	r.mu.Unlock()
	if same {
		return nil
	}
	r.close()
	srv, err := api.Listen(s, api.Handler(r.d, r.currentToken))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.srv, r.settings = srv, s
	r.mu.Unlock()
	return nil
}

func (r *apiRunner) close() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (a *cli) runDaemon(ctx context.Context, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	var logMu sync.Mutex
	events := func(ev daemon.Event) {
		if ev.Type != daemon.EventLog || (a.quiet && ev.Level == "info") {
			return
		}
		logMu.Lock()
		defer logMu.Unlock()
		if a.jsonOut {
			_ = jsonLine(a.out, ev)
			return
		}
		job := ""
		if ev.Job != "" {
			job = ev.Job + ": "
		}
		level := ""
		if ev.Level != "info" {
			level = ev.Level + ": "
		}
		fmt.Fprintf(a.out, "%s %s%s%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), job, level, displayText(ev.Message))
	}
	d, err := daemon.Open(ctx, daemon.Options{Config: cfg, Events: events, Version: version.Program})
	if err != nil {
		return err
	}
	defer d.Close()
	logf := func(level, format string, args ...any) {
		events(daemon.Event{Time: time.Now(), Type: daemon.EventLog, Level: level, Message: fmt.Sprintf(format, args...)})
	}
	r := &apiRunner{d: d}
	if err := r.apply(cfg.Server); err != nil {
		return err
	}
	defer r.close()
	if r.srv != nil {
		logf("info", "API on %s (token in %s)", r.srv.Addr(), r.tokenAt)
	}
	hup, stopHUP := notifyReload()
	defer stopHUP()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case <-hup:
			a.reload(ctx, path, d, r, logf)
		}
	}
}

// reload applies the configuration file again; a file with errors is
// refused and the running configuration kept.
func (a *cli) reload(ctx context.Context, path string, d *daemon.Daemon, r *apiRunner, logf func(level, format string, args ...any)) {
	cfg, err := config.Load(path)
	var es config.Errors
	switch {
	case errors.As(err, &es):
		logf("error", "reload refused, the running configuration stays: %d problems in %s", len(es), path)
		for _, e := range es {
			logf("error", "  %v", e)
		}
		return
	case err != nil:
		logf("error", "reload refused, the running configuration stays: %v", err)
		return
	}
	diff, err := d.Reload(ctx, cfg)
	if err != nil {
		logf("error", "reload refused, the running configuration stays: %v", err)
		return
	}
	if err := r.apply(cfg.Server); err != nil {
		logf("error", "reload: API: %v", err)
	}
	if len(diff) == 0 {
		logf("info", "configuration reloaded: nothing changed")
		return
	}
	logf("info", "configuration reloaded: %d changes", len(diff))
	for _, line := range diff {
		logf("info", "  %s", line)
	}
}
