package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/plan"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/verify"
)

// The file's shape. Durations, sizes and percentages are strings that the
// validator parses, so that their errors say what a value should look
// like. Pointers tell a key left out from a key set to its zero value.
type fileConfig struct {
	Server *fileServer         `toml:"server"`
	Jobs   map[string]*fileJob `toml:"jobs"`
}

type fileServer struct {
	Listen      *string `toml:"listen"`
	TokenFile   string  `toml:"token_file"`
	TLSCert     string  `toml:"tls_cert"`
	TLSKey      string  `toml:"tls_key"`
	StateDir    string  `toml:"state_dir"`
	CacheDir    string  `toml:"cache_dir"`
	MaxParallel *int    `toml:"max_parallel"`
	Inotify     bool    `toml:"inotify"`
	LogKeep     *int    `toml:"log_keep"`
	StopTimeout string  `toml:"stop_timeout"`
}

type fileJob struct {
	Repository      string         `toml:"repository"`
	PasswordFile    string         `toml:"password_file"`
	PasswordCommand string         `toml:"password_command"`
	PasswordEnv     string         `toml:"password_env"`
	Paths           []string       `toml:"paths"`
	Exclude         []string       `toml:"exclude"`
	ExcludeFiles    []string       `toml:"exclude_files"`
	OneFileSystem   bool           `toml:"one_file_system"`
	Host            string         `toml:"host"`
	Tags            []string       `toml:"tags"`
	Compression     string         `toml:"compression"`
	LimitUpload     int            `toml:"limit_upload"`
	LimitDownload   int            `toml:"limit_download"`
	S3Region        string         `toml:"s3_region"`
	S3BucketLookup  string         `toml:"s3_bucket_lookup"`
	Trigger         *fileTrigger   `toml:"trigger"`
	FullScan        *fileFullScan  `toml:"full_scan"`
	Retention       *fileRetention `toml:"retention"`
	Verify          *fileVerify    `toml:"verify"`
	Alert           *fileAlert     `toml:"alert"`
	Hooks           *fileHooks     `toml:"hooks"`
}

type fileTrigger struct {
	Settle      string `toml:"settle"`
	MinInterval string `toml:"min_interval"`
	MaxDelay    string `toml:"max_delay"`
	SafetyNet   string `toml:"safety_net"`
	Retry       string `toml:"retry"`
	RetryMax    string `toml:"retry_max"`
}

type fileFullScan struct {
	Every  int    `toml:"every"`
	MaxAge string `toml:"max_age"`
	Window string `toml:"window"`
}

type fileRetention struct {
	KeepLast    int      `toml:"keep_last"`
	KeepHourly  int      `toml:"keep_hourly"`
	KeepDaily   int      `toml:"keep_daily"`
	KeepWeekly  int      `toml:"keep_weekly"`
	KeepMonthly int      `toml:"keep_monthly"`
	KeepYearly  int      `toml:"keep_yearly"`
	KeepWithin  string   `toml:"keep_within"`
	KeepTags    []string `toml:"keep_tags"`
	Tiers       string   `toml:"tiers"`
	Timezone    string   `toml:"timezone"`
	Every       string   `toml:"every"`
	Prune       *bool    `toml:"prune"`
	MaxUnused   string   `toml:"max_unused"`
}

type fileVerify struct {
	Budget   string `toml:"budget"`
	Requests string `toml:"requests"`
}

type fileAlert struct {
	After     string `toml:"after"`
	OnFailure *bool  `toml:"on_failure"`
	Command   string `toml:"command"`
	URL       string `toml:"url"`
	Format    string `toml:"format"`
}

type fileHooks struct {
	Before  string `toml:"before"`
	After   string `toml:"after"`
	Failure string `toml:"failure"`
	Timeout string `toml:"timeout"`
}

// validator collects the problems of one file.
type validator struct {
	file string
	pos  positions
	errs Errors
}

// errorf records a problem with the key given by parts.
func (v *validator) errorf(parts []string, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.pos.line(parts...), Key: dotted(parts), Msg: fmt.Sprintf(format, args...)})
}

// elemErrorf records a problem with element i of the list at parts.
func (v *validator) elemErrorf(parts []string, i int, format string, args ...any) {
	elem := append(append([]string(nil), parts[:len(parts)-1]...), parts[len(parts)-1]+"["+strconv.Itoa(i)+"]")
	line, ok := v.pos[keyPath(elem...)]
	if !ok {
		line = v.pos.line(parts...)
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Key: dotted(elem), Msg: fmt.Sprintf(format, args...)})
}

// dotted writes a key as TOML does, quoting parts that need it.
func dotted(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		base := p
		if k := strings.IndexByte(p, '['); k > 0 {
			base = p[:k]
		}
		if bareKey.MatchString(base) {
			out[i] = p
		} else {
			out[i] = strconv.Quote(p)
		}
	}
	return strings.Join(out, ".")
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// jobName is what a job may be called: it appears in URLs, metric labels
// and environment variables.
var jobName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (v *validator) config(f *fileConfig) *Config {
	cfg := &Config{Server: v.server(f.Server)}
	if len(f.Jobs) == 0 {
		v.errorf([]string{"jobs"}, "no jobs: add a [jobs.NAME] table with repository, password_file and paths")
	}
	names := make([]string, 0, len(f.Jobs))
	for name := range f.Jobs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if j := v.job(name, f.Jobs[name]); j != nil {
			cfg.Jobs = append(cfg.Jobs, j)
		}
	}
	v.sameSets(cfg.Jobs)
	return cfg
}

func (v *validator) server(f *fileServer) Server {
	s := Server{Listen: DefaultListen, MaxParallel: DefaultMaxParallel, LogKeep: DefaultLogKeep, StopTimeout: DefaultStopTimeout}
	if f == nil {
		return s
	}
	key := func(k string) []string { return []string{"server", k} }
	s.TokenFile = v.absPath(key("token_file"), f.TokenFile)
	s.StateDir = v.absPath(key("state_dir"), f.StateDir)
	s.CacheDir = v.absPath(key("cache_dir"), f.CacheDir)
	s.TLSCert = v.absPath(key("tls_cert"), f.TLSCert)
	s.TLSKey = v.absPath(key("tls_key"), f.TLSKey)
	if (s.TLSCert == "") != (s.TLSKey == "") {
		v.errorf(key("tls_cert"), "tls_cert and tls_key go together")
	}
	if f.Listen != nil {
		s.Listen = strings.TrimSpace(*f.Listen)
		if s.Listen == "off" {
			s.Listen = ""
		}
	}
	if s.Listen != "" {
		if err := checkListen(s.Listen, s.TLSCert != ""); err != nil {
			v.errorf(key("listen"), "%v", err)
		}
	}
	if f.MaxParallel != nil {
		s.MaxParallel = *f.MaxParallel
		if s.MaxParallel < 1 || s.MaxParallel > 64 {
			v.errorf(key("max_parallel"), "%d: want 1 to 64 jobs at once", s.MaxParallel)
		}
	}
	s.Inotify = f.Inotify
	if f.LogKeep != nil {
		s.LogKeep = *f.LogKeep
		if s.LogKeep < 10 {
			v.errorf(key("log_keep"), "%d: keep at least 10 operations", s.LogKeep)
		}
	}
	s.StopTimeout = v.duration(key("stop_timeout"), f.StopTimeout, DefaultStopTimeout, false)
	return s
}

// checkListen refuses an address the API must not listen on: without TLS,
// only loopback (an unauthenticated or sniffable server beyond the machine
// is how kopia's CVE-2026-45695 came about).
func checkListen(addr string, tls bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. %s, or \"off\"", addr, DefaultListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q: want 1 to 65535", addr, port)
	}
	if tls || IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: the API listens beyond this machine only over TLS (set tls_cert and tls_key), or use 127.0.0.1 or [::1]", addr)
}

// IsLoopback reports whether host (an IP literal or "localhost") names
// only this machine. Other names are not resolved: what they resolve to
// may change.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) absPath(parts []string, p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		v.errorf(parts, "%q: want an absolute path", p)
		return p
	}
	return filepath.Clean(p)
}

// duration parses a duration such as "90s", "10m", "24h", "7d" or "2w";
// "0" and (with off) "off" are zero. An empty string gives def.
func (v *validator) duration(parts []string, s string, def time.Duration, off bool) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" {
		return def
	}
	d, err := ParseDuration(s)
	if err == nil && d == 0 && !off && s == "off" {
		err = fmt.Errorf("cannot be off")
	}
	if err != nil {
		v.errorf(parts, "%q: %v", s, err)
		return def
	}
	return d
}

// ParseDuration parses a duration as the configuration writes them: Go's
// syntax ("90s", "1h30m"), whole days or weeks ("7d", "2w"), or "0" and
// "off" for none. Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	if s == "off" || s == "0" {
		return 0, nil
	}
	for unit, size := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			k, err := strconv.ParseUint(n, 10, 32)
			if err != nil || k > math.MaxInt64/uint64(size) {
				return 0, fmt.Errorf("want a duration such as 10s, 5m, 24h or 7d")
			}
			return time.Duration(k) * size, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 10s, 5m, 24h or 7d")
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return d, nil
}

func (v *validator) job(name string, f *fileJob) *Job {
	base := []string{"jobs", name}
	key := func(k ...string) []string { return append(append([]string(nil), base...), k...) }
	if !jobName.MatchString(name) {
		v.errorf(base, "job name %q: use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 64)", name)
	}
	if f == nil {
		f = &fileJob{}
	}
	j := &Job{Name: name, Repository: strings.TrimSpace(f.Repository), OneFileSystem: f.OneFileSystem, Host: f.Host,
		Tags: f.Tags, Compression: f.Compression, LimitUploadKiB: f.LimitUpload, LimitDownloadKiB: f.LimitDownload,
		S3Region: f.S3Region, S3BucketLookup: f.S3BucketLookup}
	if j.Repository == "" {
		v.errorf(key("repository"), "missing: give the repository's location (a directory, sftp:user@host:/path or s3:https://host/bucket)")
	}
	j.Password = Secret{File: f.PasswordFile, Command: f.PasswordCommand, Env: f.PasswordEnv}
	switch n := j.Password.count(); {
	case n == 0:
		v.errorf(key("password_file"), "missing: give the password by reference: password_file, password_command or password_env")
	case n > 1:
		v.errorf(key("password_file"), "give one of password_file, password_command and password_env")
	case j.Password.File != "":
		j.Password.File = v.absPath(key("password_file"), j.Password.File)
	}
	if len(f.Paths) == 0 {
		v.errorf(key("paths"), "missing: list the paths to back up, e.g. paths = [\"/home/alice\"]")
	}
	for i, p := range f.Paths {
		if p == "" || !filepath.IsAbs(p) {
			v.elemErrorf(key("paths"), i, "%q: want an absolute path", p)
			continue
		}
		j.Paths = append(j.Paths, filepath.Clean(p))
	}
	for i, p := range f.Exclude {
		if _, err := scan.NewExcluder([]string{p}); err != nil {
			v.elemErrorf(key("exclude"), i, "%v", err)
			continue
		}
		j.Exclude = append(j.Exclude, p)
	}
	for i, p := range f.ExcludeFiles {
		if !filepath.IsAbs(p) {
			v.elemErrorf(key("exclude_files"), i, "%q: want an absolute path", p)
			continue
		}
		j.ExcludeFiles = append(j.ExcludeFiles, filepath.Clean(p))
	}
	for i, t := range f.Tags {
		if t == "" || strings.Contains(t, ",") {
			v.elemErrorf(key("tags"), i, "%q: a tag is not empty and has no comma", t)
		}
	}
	switch j.Compression {
	case "":
		j.Compression = "default"
	case "off", "fastest", "default", "better":
	default:
		v.errorf(key("compression"), "%q: want off, fastest, default or better", j.Compression)
	}
	switch j.S3BucketLookup {
	case "", "auto", "path", "dns":
	default:
		v.errorf(key("s3_bucket_lookup"), "%q: want auto, path or dns", j.S3BucketLookup)
	}
	if j.LimitUploadKiB < 0 {
		v.errorf(key("limit_upload"), "%d: KiB/s must not be negative", j.LimitUploadKiB)
	}
	if j.LimitDownloadKiB < 0 {
		v.errorf(key("limit_download"), "%d: KiB/s must not be negative", j.LimitDownloadKiB)
	}
	j.Trigger = v.trigger(key("trigger"), f.Trigger)
	j.FullScan = v.fullScan(key("full_scan"), f.FullScan)
	j.Retention = v.retention(key("retention"), f.Retention)
	j.Verify = v.verify(key("verify"), f.Verify)
	j.Alert = v.alert(key("alert"), f.Alert)
	j.Hooks = v.hooks(key("hooks"), f.Hooks)
	return j
}

func (v *validator) trigger(parts []string, f *fileTrigger) Trigger {
	if f == nil {
		f = &fileTrigger{}
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	t := Trigger{
		Settle:      v.duration(key("settle"), f.Settle, DefaultSettle, false),
		MinInterval: v.duration(key("min_interval"), f.MinInterval, DefaultMinInterval, false),
		MaxDelay:    v.duration(key("max_delay"), f.MaxDelay, DefaultMaxDelay, false),
		SafetyNet:   v.duration(key("safety_net"), f.SafetyNet, DefaultSafetyNet, true),
		Retry:       v.duration(key("retry"), f.Retry, DefaultRetry, false),
		RetryMax:    v.duration(key("retry_max"), f.RetryMax, DefaultRetryMax, false),
	}
	switch {
	case t.MaxDelay == 0:
		v.errorf(key("max_delay"), "must be more than 0: it bounds how long a change may wait under constant churn")
	case t.MaxDelay < t.MinInterval:
		v.errorf(key("max_delay"), "%s is shorter than min_interval %s: under churn a backup could not start in time", t.MaxDelay, t.MinInterval)
	case t.MaxDelay < t.Settle:
		v.errorf(key("max_delay"), "%s is shorter than settle %s: changes would never be waited on", t.MaxDelay, t.Settle)
	}
	if t.Retry == 0 {
		v.errorf(key("retry"), "must be more than 0")
	}
	if t.RetryMax < t.Retry {
		v.errorf(key("retry_max"), "%s is shorter than retry %s", t.RetryMax, t.Retry)
	}
	return t
}

func (v *validator) fullScan(parts []string, f *fileFullScan) FullScan {
	if f == nil {
		return FullScan{MaxAge: DefaultFullMaxAge}
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	fs := FullScan{Every: f.Every, Window: f.Window, MaxAge: v.duration(key("max_age"), f.MaxAge, DefaultFullMaxAge, true)}
	if fs.Every < 0 {
		v.errorf(key("every"), "%d: must not be negative (0: never)", fs.Every)
	}
	if fs.Window != "" {
		if _, _, err := plan.ParseWindow(fs.Window); err != nil {
			v.errorf(key("window"), "%q: %v", fs.Window, err)
		}
	}
	return fs
}

func (v *validator) retention(parts []string, f *fileRetention) *Retention {
	if f == nil {
		return nil
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	r := &Retention{Every: v.duration(key("every"), f.Every, DefaultForgetEvery, false), Prune: true, MaxUnused: 0.05}
	if f.Prune != nil {
		r.Prune = *f.Prune
	}
	if r.Every == 0 {
		v.errorf(key("every"), "must be more than 0; leave the [retention] table out to never forget snapshots")
	}
	p := &r.Policy
	var rules []string
	counts := []struct {
		name string
		n    int
		dst  *int
	}{{"keep_last", f.KeepLast, &p.Last}, {"keep_hourly", f.KeepHourly, &p.Hourly}, {"keep_daily", f.KeepDaily, &p.Daily},
		{"keep_weekly", f.KeepWeekly, &p.Weekly}, {"keep_monthly", f.KeepMonthly, &p.Monthly}, {"keep_yearly", f.KeepYearly, &p.Yearly}}
	for _, c := range counts {
		if c.n < 0 {
			v.errorf(key(c.name), "%d: must not be negative", c.n)
			continue
		}
		*c.dst = c.n
		if c.n > 0 {
			rules = append(rules, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	if f.KeepWithin != "" {
		d, err := retention.ParseWithin(f.KeepWithin)
		if err != nil {
			v.errorf(key("keep_within"), "%q: %s", f.KeepWithin, strings.TrimPrefix(err.Error(), fmt.Sprintf("--keep-within %q: ", f.KeepWithin)))
		}
		p.Within = d
		rules = append(rules, "keep_within "+f.KeepWithin)
	}
	for i, t := range f.KeepTags {
		if t == "" {
			v.elemErrorf(key("keep_tags"), i, "empty tag")
		}
	}
	if len(f.KeepTags) > 0 {
		p.Tags = f.KeepTags
		rules = append(rules, "keep_tags "+strings.Join(f.KeepTags, ","))
	}
	if f.Tiers != "" {
		ts, err := retention.ParseTiers(f.Tiers)
		if err != nil {
			// Its errors name the command line's flag.
			v.errorf(key("tiers"), "%q: %s", f.Tiers, strings.TrimPrefix(err.Error(), fmt.Sprintf("--retention %q: ", f.Tiers)))
		}
		p.Tiers = ts
		rules = append(rules, "tiers "+f.Tiers)
	}
	p.Location = time.Local
	if f.Timezone != "" {
		loc, err := time.LoadLocation(f.Timezone)
		if err != nil {
			v.errorf(key("timezone"), "%q: %v", f.Timezone, err)
		} else {
			p.Location = loc
		}
	}
	if p.Empty() && len(rules) == 0 {
		v.errorf(parts, "no keep_* rule and no tiers: forget would remove every snapshot (leave the table out to keep them all)")
	}
	r.Rules = strings.Join(rules, ", ")
	if f.MaxUnused != "" {
		s := strings.TrimSpace(f.MaxUnused)
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !strings.HasSuffix(s, "%") || n < 0 || n > 100 || math.IsNaN(n) {
			v.errorf(key("max_unused"), "%q: want a percentage from 0%% to 100%%, e.g. 5%%", f.MaxUnused)
		}
		r.MaxUnused = n / 100
	}
	return r
}

func (v *validator) verify(parts []string, f *fileVerify) Verify {
	if f == nil {
		return Verify{Budget: "off", Requests: "off"}
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	out := Verify{Budget: "200MiB/day", Requests: "100/day"}
	if f.Budget != "" {
		out.Budget = f.Budget
	}
	if f.Requests != "" {
		out.Requests = f.Requests
	}
	b, err := verify.ParseBudget(out.Budget)
	if err != nil {
		v.errorf(key("budget"), "%v", err)
	}
	n, err := verify.ParseRequests(out.Requests)
	if err != nil {
		v.errorf(key("requests"), "%v", err)
	}
	if b.Off() || n.Off() {
		out.Budget, out.Requests = "off", "off"
	}
	return out
}

func (v *validator) alert(parts []string, f *fileAlert) Alert {
	if f == nil {
		return Alert{}
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	a := Alert{After: v.duration(key("after"), f.After, 0, true), Command: f.Command, URL: strings.TrimSpace(f.URL), Format: f.Format}
	a.OnFailure = a.Command != "" || a.URL != ""
	if f.OnFailure != nil {
		a.OnFailure = *f.OnFailure
	}
	if a.URL != "" {
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(key("url"), "%q: want an http:// or https:// URL", a.URL)
		}
	}
	switch a.Format {
	case "":
		a.Format = "json"
	case "json", "text":
	default:
		v.errorf(key("format"), "%q: want json or text", a.Format)
	}
	if (a.After > 0 || a.OnFailure) && a.Command == "" && a.URL == "" {
		v.errorf(parts, "say how to alert: command, url or both")
	}
	return a
}

func (v *validator) hooks(parts []string, f *fileHooks) Hooks {
	if f == nil {
		return Hooks{Timeout: DefaultHookTimeout}
	}
	key := func(k string) []string { return append(append([]string(nil), parts...), k) }
	h := Hooks{Before: f.Before, After: f.After, Failure: f.Failure, Timeout: v.duration(key("timeout"), f.Timeout, DefaultHookTimeout, false)}
	if h.Timeout == 0 {
		v.errorf(key("timeout"), "must be more than 0")
	}
	return h
}

// sameSets refuses two jobs that would take each other's snapshots as
// parents: the same repository, host and paths.
func (v *validator) sameSets(jobs []*Job) {
	seen := map[string]string{}
	for _, j := range jobs {
		paths := slices.Clone(j.Paths)
		sort.Strings(paths)
		k := j.Repository + "\x00" + j.Host + "\x00" + strings.Join(paths, "\x00")
		if other, ok := seen[k]; ok {
			v.errorf([]string{"jobs", j.Name, "paths"}, "job %s backs up the same paths into the same repository: the two would share snapshots", other)
			continue
		}
		seen[k] = j.Name
	}
}
