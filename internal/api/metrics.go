package api

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/tidemark/tidemark/internal/daemon"
)

// metrics writes the Prometheus text exposition format (version 0.0.4) by
// hand: a dozen gauges and counters per job do not justify
// prometheus/client_golang and the modules it brings (protobuf, procfs,
// prometheus/common), and what is exported is read from the daemon's
// status at each scrape rather than kept twice.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeMetrics(w, h.b.Status(), h.b.Jobs())
}

type metricWriter struct {
	w    io.Writer
	seen map[string]bool
}

func (m *metricWriter) sample(name, kind, help string, labels []string, value float64) {
	if !m.seen[name] {
		m.seen[name] = true
		fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	fmt.Fprintf(m.w, "%s", name)
	if len(labels) > 0 {
		parts := make([]string, 0, len(labels)/2)
		for i := 0; i+1 < len(labels); i += 2 {
			parts = append(parts, labels[i]+`="`+escapeLabel(labels[i+1])+`"`)
		}
		fmt.Fprintf(m.w, "{%s}", strings.Join(parts, ","))
	}
	fmt.Fprintf(m.w, " %g\n", value)
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func writeMetrics(w io.Writer, d daemon.DaemonStatus, jobs []daemon.JobStatus) {
	m := &metricWriter{w: w, seen: map[string]bool{}}
	m.sample("tidemark_watcher_up", "gauge", "Whether the change watcher records changes (1) or not (0).", nil, b2f(d.WatcherUp))
	m.sample("tidemark_operations_running", "gauge", "Operations running now.", nil, float64(d.Running))
	m.sample("tidemark_start_time_seconds", "gauge", "When the daemon started, in seconds since the epoch.", nil, float64(d.Started.Unix()))
	// Each family's samples together, as the format wants them.
	type family struct {
		name, kind, help string
		value            func(daemon.JobStatus) (float64, bool)
	}
	families := []family{
		{"tidemark_job_recovery_point_seconds", "gauge", "Age of the oldest change not yet in a snapshot (0: all seen changes are in one).",
			func(s daemon.JobStatus) (float64, bool) { return s.RecoveryPoint, true }},
		{"tidemark_job_last_success_timestamp_seconds", "gauge", "End of the last successful backup, in seconds since the epoch.",
			func(s daemon.JobStatus) (float64, bool) {
				if s.LastSuccess == nil {
					return 0, false
				}
				return float64(s.LastSuccess.Unix()), true
			}},
		{"tidemark_job_last_backup_duration_seconds", "gauge", "Duration of the last successful backup.",
			func(s daemon.JobStatus) (float64, bool) {
				if s.LastBackup == nil {
					return 0, false
				}
				return s.LastBackup.Duration.Seconds(), true
			}},
		{"tidemark_job_last_backup_bytes_added", "gauge", "Bytes the last successful backup added to the repository.",
			func(s daemon.JobStatus) (float64, bool) {
				if s.LastBackup == nil {
					return 0, false
				}
				return float64(s.LastBackup.BytesAdded), true
			}},
		{"tidemark_job_running", "gauge", "Whether an operation of the job runs.", func(s daemon.JobStatus) (float64, bool) { return b2f(s.Running != ""), true }},
		{"tidemark_job_paused", "gauge", "Whether the job is paused.", func(s daemon.JobStatus) (float64, bool) { return b2f(s.Paused), true }},
		{"tidemark_job_consecutive_failures", "gauge", "Backups of the job failed in a row.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Failures), true }},
		{"tidemark_job_alerting", "gauge", "Whether the recovery point is past alert.after.", func(s daemon.JobStatus) (float64, bool) { return b2f(s.Alerting), true }},
		{"tidemark_job_backups_total", "counter", "Successful backups since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.Backups), true }},
		{"tidemark_job_backups_failed_total", "counter", "Failed backups since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.BackupsFailed), true }},
		{"tidemark_job_bytes_added_total", "counter", "Bytes added to the repository since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.BytesAdded), true }},
		{"tidemark_job_bytes_read_total", "counter", "Bytes read from files since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.BytesRead), true }},
		{"tidemark_job_backup_seconds_total", "counter", "Time spent in successful backups since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return s.Counters.DurationTotal, true }},
		{"tidemark_job_forgets_total", "counter", "Forget runs since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.Forgets), true }},
		{"tidemark_job_alerts_sent_total", "counter", "Alerts delivered since the daemon started.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.AlertsSent), true }},
		{"tidemark_job_alerts_failed_total", "counter", "Alerts that could not be delivered.", func(s daemon.JobStatus) (float64, bool) { return float64(s.Counters.AlertsFailed), true }},
		{"tidemark_job_verify_window_bytes", "gauge", "Bytes verify downloaded in its budget's current window.",
			func(s daemon.JobStatus) (float64, bool) {
				if s.Verify == nil {
					return 0, false
				}
				return float64(s.Verify.WindowBytes), true
			}},
	}
	for _, f := range families {
		for _, s := range jobs {
			if v, ok := f.value(s); ok {
				m.sample(f.name, f.kind, f.help, []string{"job", s.Name}, v)
			}
		}
	}
	for _, s := range jobs {
		modes := make([]string, 0, len(s.Counters.ByMode))
		for mode := range s.Counters.ByMode {
			modes = append(modes, mode)
		}
		sort.Strings(modes)
		for _, mode := range modes {
			m.sample("tidemark_job_backups_by_scan_mode_total", "counter", "Successful backups by how they scanned (full, parent-assisted, journal).",
				[]string{"job", s.Name, "mode", mode}, float64(s.Counters.ByMode[mode]))
		}
	}
}
