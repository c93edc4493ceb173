package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RestartOnly lists the [server] keys a reload cannot change: the running
// daemon keeps its watcher's state directory, caches and source until it
// restarts.
var RestartOnly = map[string]bool{"server.state_dir": true, "server.cache_dir": true, "server.inotify": true}

// Diff lists what changes from old to new, one line per setting, in a
// stable order: what a running daemon would do differently after a
// reload. Secrets are shown by reference only.
func Diff(old, new *Config) []string {
	var out []string
	for _, c := range diffPairs(old.Server.settings(), new.Server.settings()) {
		line := "server." + c
		k, _, _ := strings.Cut(line, ":")
		if RestartOnly[k] {
			line += " (takes effect when tidemark run restarts)"
		}
		out = append(out, line)
	}
	for _, nj := range new.Jobs {
		oj := old.Job(nj.Name)
		if oj == nil {
			out = append(out, fmt.Sprintf("job %s: added (%s into %s)", nj.Name, strings.Join(nj.Paths, ", "), nj.Repository))
			continue
		}
		for _, c := range diffPairs(oj.settings(), nj.settings()) {
			out = append(out, fmt.Sprintf("job %s: %s", nj.Name, c))
		}
	}
	for _, oj := range old.Jobs {
		if new.Job(oj.Name) == nil {
			out = append(out, fmt.Sprintf("job %s: removed", oj.Name))
		}
	}
	return out
}

type setting struct{ key, value string }

func diffPairs(a, b []setting) []string {
	old := map[string]string{}
	for _, s := range a {
		old[s.key] = s.value
	}
	var out []string
	for _, s := range b {
		if o := old[s.key]; o != s.value {
			out = append(out, fmt.Sprintf("%s: %s -> %s", s.key, show(o), show(s.value)))
		}
	}
	return out
}

func show(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

func dur(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	return d.String()
}

func list(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (s Server) settings() []setting {
	return []setting{
		{"listen", s.Listen}, {"token_file", s.TokenFile}, {"tls_cert", s.TLSCert}, {"tls_key", s.TLSKey},
		{"state_dir", s.StateDir}, {"cache_dir", s.CacheDir}, {"max_parallel", strconv.Itoa(s.MaxParallel)},
		{"inotify", strconv.FormatBool(s.Inotify)}, {"log_keep", strconv.Itoa(s.LogKeep)}, {"stop_timeout", dur(s.StopTimeout)},
	}
}

func (j *Job) settings() []setting {
	s := []setting{
		{"repository", j.Repository}, {"password", j.Password.String()}, {"paths", list(j.Paths)},
		{"exclude", list(j.Exclude)}, {"exclude_files", list(j.ExcludeFiles)}, {"one_file_system", strconv.FormatBool(j.OneFileSystem)},
		{"host", j.Host}, {"tags", list(j.Tags)}, {"compression", j.Compression},
		{"limit_upload", strconv.Itoa(j.LimitUploadKiB)}, {"limit_download", strconv.Itoa(j.LimitDownloadKiB)},
		{"s3_region", j.S3Region}, {"s3_bucket_lookup", j.S3BucketLookup},
		{"trigger.settle", dur(j.Trigger.Settle)}, {"trigger.min_interval", dur(j.Trigger.MinInterval)},
		{"trigger.max_delay", dur(j.Trigger.MaxDelay)}, {"trigger.safety_net", dur(j.Trigger.SafetyNet)},
		{"trigger.retry", dur(j.Trigger.Retry)}, {"trigger.retry_max", dur(j.Trigger.RetryMax)},
		{"full_scan.every", strconv.Itoa(j.FullScan.Every)}, {"full_scan.max_age", dur(j.FullScan.MaxAge)}, {"full_scan.window", j.FullScan.Window},
		{"verify.budget", j.Verify.Budget}, {"verify.requests", j.Verify.Requests},
		{"alert.after", dur(j.Alert.After)}, {"alert.on_failure", strconv.FormatBool(j.Alert.OnFailure)},
		{"alert.command", j.Alert.Command}, {"alert.url", j.Alert.URL}, {"alert.format", j.Alert.Format},
		{"hooks.before", j.Hooks.Before}, {"hooks.after", j.Hooks.After}, {"hooks.failure", j.Hooks.Failure}, {"hooks.timeout", dur(j.Hooks.Timeout)},
	}
	if r := j.Retention; r != nil {
		s = append(s, setting{"retention", r.Rules}, setting{"retention.every", dur(r.Every)},
			setting{"retention.prune", strconv.FormatBool(r.Prune)}, setting{"retention.max_unused", strconv.FormatFloat(r.MaxUnused*100, 'g', -1, 64) + "%"})
	} else {
		s = append(s, setting{"retention", "(none: snapshots are kept)"})
	}
	return s
}
