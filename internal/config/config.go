package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/tidemark/tidemark/internal/retention"
)

// Config is a validated configuration file.
type Config struct {
	// File is the path the configuration was read from.
	File string `json:"file"`
	// Source is the file's text. It holds no secret (they are given by
	// reference), so the API may show it.
	Source []byte `json:"-"`
	Server Server `json:"server"`
	// Jobs are sorted by name.
	Jobs []*Job `json:"jobs"`
}

// Job returns the job called name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Server is the [server] table: the daemon as a whole.
type Server struct {
	// Listen is the JSON API's address (host:port); empty when the API is
	// off ("off" in the file).
	Listen string `json:"listen"`
	// TokenFile holds the API's bearer token (default STATE_DIR/api-token,
	// created by `tidemark run` when missing).
	TokenFile string `json:"token_file"`
	// TLSCert and TLSKey serve the API over HTTPS; required for an address
	// other than loopback.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// StateDir holds the change journal and the daemon's database (""
	// for the default, $XDG_STATE_HOME/tidemark).
	StateDir string `json:"state_dir,omitempty"`
	// CacheDir is the root of the repositories' local caches ("" for the
	// default, $XDG_CACHE_HOME/tidemark).
	CacheDir string `json:"cache_dir,omitempty"`
	// MaxParallel bounds the jobs that run at once.
	MaxParallel int `json:"max_parallel"`
	// Inotify makes the watcher use inotify even where fanotify works.
	Inotify bool `json:"inotify,omitempty"`
	// LogKeep bounds the operation log (rows kept).
	LogKeep int `json:"log_keep"`
	// StopTimeout bounds how long a stopping daemon waits for running
	// operations before abandoning them.
	StopTimeout time.Duration `json:"stop_timeout"`
}

// Job is one [jobs.NAME] table.
type Job struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Password   Secret `json:"password"`
	// Paths are absolute.
	Paths        []string `json:"paths"`
	Exclude      []string `json:"exclude,omitempty"`
	ExcludeFiles []string `json:"exclude_files,omitempty"`
	// OneFileSystem does not cross filesystem boundaries.
	OneFileSystem bool `json:"one_file_system,omitempty"`
	// Host is recorded instead of the machine's name ("" for that).
	Host string   `json:"host,omitempty"`
	Tags []string `json:"tags,omitempty"`
	// Compression is off, fastest, default or better.
	Compression string `json:"compression"`
	// LimitUploadKiB and LimitDownloadKiB cap transfer rates (0: none).
	LimitUploadKiB   int    `json:"limit_upload_kib,omitempty"`
	LimitDownloadKiB int    `json:"limit_download_kib,omitempty"`
	S3Region         string `json:"s3_region,omitempty"`
	S3BucketLookup   string `json:"s3_bucket_lookup,omitempty"`

	Trigger   Trigger    `json:"trigger"`
	FullScan  FullScan   `json:"full_scan"`
	Retention *Retention `json:"retention,omitempty"`
	Verify    Verify     `json:"verify"`
	Alert     Alert      `json:"alert"`
	Hooks     Hooks      `json:"hooks"`
}

// Trigger says when a job backs up.
type Trigger struct {
	// Settle: back up once changes have been quiet this long.
	Settle time.Duration `json:"settle"`
	// MinInterval: never start backups of the job more often than this.
	MinInterval time.Duration `json:"min_interval"`
	// MaxDelay: under constant churn, back up at least this soon after
	// the oldest change not yet in a snapshot.
	MaxDelay time.Duration `json:"max_delay"`
	// SafetyNet: back up this long after the last backup even without
	// changes (0: never).
	SafetyNet time.Duration `json:"safety_net"`
	// Retry and RetryMax bound the backoff after a failed operation: the
	// first retry after Retry, doubling up to RetryMax.
	Retry    time.Duration `json:"retry"`
	RetryMax time.Duration `json:"retry_max"`
}

// FullScan is the forced-full-scan policy (plan.Policy).
type FullScan struct {
	Every  int           `json:"every,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
	Window string        `json:"window,omitempty"`
}

// Retention is the [jobs.NAME.retention] table: which snapshots forget
// keeps, and how often forget (and prune) run.
type Retention struct {
	Policy retention.Policy `json:"-"`
	// Rules is the policy as written, for display.
	Rules string `json:"rules"`
	// Every is how often forget runs.
	Every time.Duration `json:"every"`
	// Prune runs a prune after each forget.
	Prune bool `json:"prune"`
	// MaxUnused is prune's repack threshold (0.05 for 5%).
	MaxUnused float64 `json:"max_unused"`
}

// Verify is the verification download budget after backups.
type Verify struct {
	// Budget and Requests are as verify's --verify-budget and
	// --verify-requests ("off" when verification is off).
	Budget   string `json:"budget"`
	Requests string `json:"requests"`
}

// On reports whether verification is on.
func (v Verify) On() bool { return v.Budget != "" && v.Budget != "off" }

// Alert says when and how the job alerts.
type Alert struct {
	// After: alert when a change has been unprotected this long (0: never).
	After time.Duration `json:"after,omitempty"`
	// OnFailure: alert when a backup fails.
	OnFailure bool `json:"on_failure"`
	// Command is run by the shell, URL receives an HTTP POST.
	Command string `json:"command,omitempty"`
	URL     string `json:"url,omitempty"`
	// Format of the POST body: json or text.
	Format string `json:"format,omitempty"`
}

// Hooks are commands run around a job's backups.
type Hooks struct {
	Before  string        `json:"before,omitempty"`
	After   string        `json:"after,omitempty"`
	Failure string        `json:"failure,omitempty"`
	Timeout time.Duration `json:"timeout"`
}

// Defaults, documented in the README.
const (
	DefaultListen      = "127.0.0.1:7420"
	DefaultMaxParallel = 2
	DefaultLogKeep     = 10000
	DefaultStopTimeout = 20 * time.Second
	DefaultSettle      = 10 * time.Second
	DefaultMinInterval = time.Minute
	DefaultMaxDelay    = 5 * time.Minute
	DefaultSafetyNet   = 24 * time.Hour
	DefaultRetry       = 30 * time.Second
	DefaultRetryMax    = 30 * time.Minute
	DefaultFullMaxAge  = 24 * time.Hour
	DefaultForgetEvery = 24 * time.Hour
	DefaultHookTimeout = 5 * time.Minute
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int // 0 when unknown
	// Key is the dotted key, e.g. jobs.home.trigger.settle.
	Key string
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors are all the problems found in one file.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration file's text; name is the
// file named in errors. A returned error is an Errors listing every
// problem found, in the order of the file.
func Parse(name string, data []byte) (*Config, error) {
	var f fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeErrors(name, err)
	}
	v := &validator{file: name, pos: scanPositions(data)}
	cfg := v.config(&f)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	cfg.File, cfg.Source = name, append([]byte(nil), data...)
	return cfg, nil
}

// goType matches the decoder's message about a value of the wrong type,
// which names Go types a user never wrote.
var goType = regexp.MustCompile(`cannot decode TOML (\w+) into struct field \S+ of type (\S+)`)

// decodeErrors turns the decoder's errors into Errors with lines and keys.
func decodeErrors(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var es Errors
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			msg := "unknown key"
			switch k := de.Key(); {
			case len(k) == 3 && k[0] == "jobs" && k[2] == "password":
				msg = "passwords are never written in the configuration: use password_file, password_command or password_env"
			case len(k) == 2 && k[0] == "server" && k[1] == "token":
				msg = "the API token is never written in the configuration: use token_file"
			}
			es = append(es, &Error{File: name, Line: line, Key: key, Msg: msg})
		}
		return es
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := goType.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("is a TOML %s, want %s", m[1], typeName(m[2]))
		}
		return Errors{{File: name, Line: line, Key: strings.Join(de.Key(), "."), Msg: msg}}
	}
	return Errors{{File: name, Msg: err.Error()}}
}

func typeName(goType string) string {
	switch {
	case goType == "string":
		return "a string (durations too: \"10s\", \"5m\", \"24h\")"
	case goType == "[]string":
		return "a list of strings"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"):
		return "an integer"
	case strings.HasPrefix(goType, "*config.file") || strings.HasPrefix(goType, "map["):
		return "a table"
	}
	return goType
}
