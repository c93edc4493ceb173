package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/config"
)

// Alert kinds.
const (
	// AlertRecoveryPoint: a change has been unprotected longer than the
	// job's alert.after.
	AlertRecoveryPoint = "recovery_point"
	// AlertBackupFailed: a backup failed (sent once per run of failures,
	// and again when the error changes).
	AlertBackupFailed = "backup_failed"
	// AlertResolved: what was alerted on is over.
	AlertResolved = "resolved"
)

// Alert is what an alert says, as the JSON body of its POST and, as
// TIDEMARK_* variables, in its command's environment.
type Alert struct {
	Time  time.Time `json:"time"`
	Host  string    `json:"host"`
	Job   string    `json:"job"`
	Event string    `json:"event"`
	// Message says it in a sentence.
	Message string `json:"message"`
	// RecoveryPoint is the job's recovery point when the alert was made.
	RecoveryPoint float64 `json:"recovery_point_seconds"`
	Error         string  `json:"error,omitempty"`
	Repository    string  `json:"repository"`
}

// alertTimeout bounds an alert's command or POST.
const alertTimeout = 30 * time.Second

// sendAlert runs the job's alert command and POSTs to its URL. It returns
// the first failure; both are attempted.
func sendAlert(ctx context.Context, client *http.Client, cfg config.Alert, a Alert) error {
	ctx, cancel := context.WithTimeout(ctx, alertTimeout)
	defer cancel()
	var errs []string
	if cfg.Command != "" {
		env := []string{
			"TIDEMARK_JOB=" + a.Job, "TIDEMARK_EVENT=" + a.Event, "TIDEMARK_MESSAGE=" + a.Message,
			"TIDEMARK_RECOVERY_POINT=" + strconv.FormatFloat(a.RecoveryPoint, 'f', 0, 64),
			"TIDEMARK_ERROR=" + a.Error, "TIDEMARK_REPOSITORY=" + a.Repository, "TIDEMARK_HOST=" + a.Host,
		}
		if out, err := runCommand(ctx, cfg.Command, env); err != nil {
			errs = append(errs, fmt.Sprintf("alert command: %v%s", err, outputNote(out)))
		}
	}
	if cfg.URL != "" {
		if err := postAlert(ctx, client, cfg, a); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func postAlert(ctx context.Context, client *http.Client, cfg config.Alert, a Alert) error {
	var body []byte
	ctype := "application/json"
	if cfg.Format == "text" {
		// ntfy and most chat webhooks show a text body as it is.
		body, ctype = []byte(fmt.Sprintf("tidemark %s on %s: %s", a.Job, a.Host, a.Message)), "text/plain; charset=utf-8"
	} else {
		var err error
		if body, err = json.Marshal(a); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert POST %s: %w", cfg.URL, err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "tidemark")
	if cfg.Format == "text" {
		req.Header.Set("Title", "tidemark "+a.Job+": "+a.Event)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("alert POST %s: %w", cfg.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert POST %s: %s", cfg.URL, resp.Status)
	}
	return nil
}

// hookFacts are what a hook learns about its job and backup, as TIDEMARK_*
// environment variables.
type hookFacts struct {
	Hook, Job, Repository, Reason string
	Paths                         []string
	Facts                         *BackupFacts
	Err                           error
	RecoveryPoint                 time.Duration
}

func (h hookFacts) env() []string {
	env := []string{
		"TIDEMARK_HOOK=" + h.Hook, "TIDEMARK_JOB=" + h.Job, "TIDEMARK_REPOSITORY=" + h.Repository,
		"TIDEMARK_PATHS=" + strings.Join(h.Paths, string(os.PathListSeparator)), "TIDEMARK_REASON=" + h.Reason,
		"TIDEMARK_RECOVERY_POINT=" + strconv.FormatFloat(h.RecoveryPoint.Seconds(), 'f', 0, 64),
	}
	if f := h.Facts; f != nil {
		env = append(env, "TIDEMARK_SNAPSHOT="+f.Snapshot, "TIDEMARK_SCAN_MODE="+f.Mode, "TIDEMARK_SCAN_REASON="+f.ScanReason,
			"TIDEMARK_FILES_NEW="+strconv.FormatUint(f.FilesNew, 10), "TIDEMARK_FILES_CHANGED="+strconv.FormatUint(f.FilesChanged, 10),
			"TIDEMARK_BYTES_ADDED="+strconv.FormatUint(f.BytesAdded, 10), "TIDEMARK_DURATION="+strconv.FormatFloat(f.Duration.Seconds(), 'f', 3, 64))
	}
	if h.Err != nil {
		env = append(env, "TIDEMARK_ERROR="+h.Err.Error())
	}
	return env
}

// runHook runs one of a job's hooks within its timeout.
func runHook(ctx context.Context, line string, timeout time.Duration, f hookFacts) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := runCommand(ctx, line, f.env())
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	return out, err
}

// maxOutput bounds the output of a hook or alert command kept for the log.
const maxOutput = 4 << 10

// runCommand runs line through the shell with extra environment, and
// returns its output (stdout and stderr, the last maxOutput bytes).
func runCommand(ctx context.Context, line string, env []string) (string, error) {
	cmd := config.ShellCommand(ctx, line)
	cmd.Env = append(os.Environ(), env...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A command that leaves a child holding its output must not keep the
	// job waiting once the command itself is done.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func outputNote(out string) string {
	if out == "" {
		return ""
	}
	return ": " + out
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxOutput {
		t.b = append(t.b[:0], t.b[len(t.b)-maxOutput:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
