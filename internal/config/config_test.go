package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const example = `
[server]
listen = "127.0.0.1:7420"
token_file = "/etc/tidemark/api-token"
max_parallel = 3

[jobs.home]
repository = "sftp:backup@nas:/srv/tidemark"
password_file = "/etc/tidemark/home.pass"
paths = ["/home/alice"]
exclude = ["*.tmp", "node_modules"]
tags = ["continuous"]
[jobs.home.trigger]
settle = "10s"
min_interval = "1m"
max_delay = "5m"
safety_net = "24h"
[jobs.home.full_scan]
every = 100
max_age = "7d"
window = "01:00-05:00"
[jobs.home.retention]
keep_daily = 7
tiers = "1D:0s,7D:1h,U:1M"
every = "12h"
max_unused = "10%"
[jobs.home.verify]
budget = "100MiB/day"
[jobs.home.alert]
after = "15m"
url = "https://ntfy.sh/alice-backups"
[jobs.home.hooks]
before = "pg_dump mydb > /home/alice/db.sql"
timeout = "2m"

[jobs.etc]
repository = "/mnt/backup/repo"
password_command = "pass show tidemark"
paths = ["/etc"]
trigger = { settle = "2s", max_delay = "1m" }
`

func TestParseExample(t *testing.T) {
	cfg, err := Parse("tidemark.toml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MaxParallel != 3 || cfg.Server.Listen != "127.0.0.1:7420" || cfg.Server.StopTimeout != DefaultStopTimeout {
		t.Errorf("server: %+v", cfg.Server)
	}
	if len(cfg.Jobs) != 2 || cfg.Jobs[0].Name != "etc" || cfg.Jobs[1].Name != "home" {
		t.Fatalf("jobs: %v", cfg.Jobs)
	}
	home := cfg.Job("home")
	want := Trigger{Settle: 10 * time.Second, MinInterval: time.Minute, MaxDelay: 5 * time.Minute, SafetyNet: 24 * time.Hour,
		Retry: DefaultRetry, RetryMax: DefaultRetryMax}
	if home.Trigger != want {
		t.Errorf("home trigger %+v, want %+v", home.Trigger, want)
	}
	if home.FullScan != (FullScan{Every: 100, MaxAge: 7 * 24 * time.Hour, Window: "01:00-05:00"}) {
		t.Errorf("full scan: %+v", home.FullScan)
	}
	r := home.Retention
	if r == nil || r.Policy.Daily != 7 || len(r.Policy.Tiers) != 3 || r.Every != 12*time.Hour || !r.Prune || r.MaxUnused != 0.1 {
		t.Errorf("retention: %+v", r)
	}
	if home.Verify != (Verify{Budget: "100MiB/day", Requests: "100/day"}) || !home.Verify.On() {
		t.Errorf("verify: %+v", home.Verify)
	}
	if home.Alert.After != 15*time.Minute || !home.Alert.OnFailure || home.Alert.Format != "json" {
		t.Errorf("alert: %+v", home.Alert)
	}
	if home.Hooks.Timeout != 2*time.Minute || home.Password.File != "/etc/tidemark/home.pass" {
		t.Errorf("hooks %+v, password %+v", home.Hooks, home.Password)
	}
	etc := cfg.Job("etc")
	if etc.Trigger.Settle != 2*time.Second || etc.Trigger.MaxDelay != time.Minute || etc.Trigger.MinInterval != DefaultMinInterval {
		t.Errorf("etc trigger (inline table): %+v", etc.Trigger)
	}
	if etc.Retention != nil || etc.Verify.On() || etc.FullScan.MaxAge != DefaultFullMaxAge || etc.Compression != "default" {
		t.Errorf("etc defaults: %+v", etc)
	}
	if string(cfg.Source) != example || cfg.File != "tidemark.toml" {
		t.Error("source not kept")
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("c.toml", []byte("[jobs.a]\nrepository = \"/r\"\npassword_env = \"PW\"\npaths = [\"/a\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.Listen != DefaultListen || s.MaxParallel != DefaultMaxParallel || s.LogKeep != DefaultLogKeep || s.TokenFile != "" {
		t.Errorf("server defaults: %+v", s)
	}
	j := cfg.Jobs[0]
	if j.Trigger.Settle != DefaultSettle || j.Trigger.SafetyNet != DefaultSafetyNet || j.Hooks.Timeout != DefaultHookTimeout || j.Alert.OnFailure {
		t.Errorf("job defaults: %+v", j)
	}
}

// TestErrors checks that each mistake is reported with the file, the line
// and the key.
func TestErrors(t *testing.T) {
	job := "[jobs.a]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = [\"/a\"]\n"
	for _, tc := range []struct {
		name, text string
		want       []string // "LINE KEY MESSAGE-PART" per error
	}{
		{"no jobs", "[server]\nlisten = \"off\"\n", []string{"0 jobs no jobs"}},
		{"syntax", "[jobs.a]\nrepository = \n", []string{"2  "}},
		{"unknown key", job + "min_intervall = \"1m\"\n", []string{"5 jobs.a.min_intervall unknown key"}},
		{"unknown key in table", job + "[jobs.a.trigger]\nsettel = \"1s\"\n", []string{"6 jobs.a.trigger.settel unknown key"}},
		{"inline password", job + "password = \"hunter2\"\n", []string{"5 jobs.a.password never written"}},
		{"inline token", "[server]\ntoken = \"x\"\n" + job, []string{"2 server.token token_file"}},
		{"wrong type", job + "[jobs.a.trigger]\nsettle = 10\n", []string{"6 jobs.a.trigger.settle is a TOML integer, want a string"}},
		{"list wanted", "[jobs.a]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = \"/a\"\n", []string{"4 jobs.a.paths want a list of strings"}},
		{"bad duration", job + "[jobs.a.trigger]\nsettle = \"ten seconds\"\n", []string{"6 jobs.a.trigger.settle want a duration"}},
		{"negative duration", job + "[jobs.a.trigger]\nsettle = \"-1s\"\n", []string{"6 jobs.a.trigger.settle negative"}},
		{"max delay short", job + "[jobs.a.trigger]\nmin_interval = \"5m\"\nmax_delay = \"1m\"\n", []string{"7 jobs.a.trigger.max_delay shorter than min_interval"}},
		{"max delay off", job + "[jobs.a.trigger]\nmax_delay = \"off\"\n", []string{"6 jobs.a.trigger.max_delay cannot be off"}},
		{"missing repository", "[jobs.a]\npassword_file = \"/pw\"\npaths = [\"/a\"]\n", []string{"1 jobs.a.repository missing"}},
		{"missing password", "[jobs.a]\nrepository = \"/r\"\npaths = [\"/a\"]\n", []string{"1 jobs.a.password_file missing"}},
		{"two passwords", job + "password_env = \"PW\"\n", []string{"3 jobs.a.password_file give one"}},
		{"relative path", "[jobs.a]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = [\n  \"/a\",\n  \"b\",\n]\n", []string{"6 jobs.a.paths[1] absolute"}},
		{"bad exclude", job + "exclude = [\"[\"]\n", []string{"5 jobs.a.exclude[0] invalid exclude pattern"}},
		{"bad job name", "[jobs.\"a/b\"]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = [\"/a\"]\n", []string{`1 jobs."a/b" job name`}},
		{"non-loopback", "[server]\nlisten = \"0.0.0.0:7420\"\n" + job, []string{"2 server.listen not a loopback address"}},
		{"hostname without TLS", "[server]\nlisten = \"nas.example:7420\"\n" + job, []string{"2 server.listen not a loopback"}},
		{"bad port", "[server]\nlisten = \"127.0.0.1:99999\"\n" + job, []string{"2 server.listen port"}},
		{"tls half", "[server]\ntls_cert = \"/c\"\n" + job, []string{"2 server.tls_cert go together"}},
		{"empty retention", job + "[jobs.a.retention]\nevery = \"1h\"\n", []string{"5 jobs.a.retention forget would remove every snapshot"}},
		{"bad tiers", job + "[jobs.a.retention]\ntiers = \"7D:1h,1D:0s\"\n", []string{"6 jobs.a.retention.tiers \"7D:1h,1D:0s\": timeframe 1D is not longer"}},
		{"bad max unused", job + "[jobs.a.retention]\nkeep_last = 3\nmax_unused = \"5\"\n", []string{"7 jobs.a.retention.max_unused percentage"}},
		{"bad window", job + "[jobs.a.full_scan]\nwindow = \"25:00-01:00\"\n", []string{"6 jobs.a.full_scan.window invalid time"}},
		{"bad budget", job + "[jobs.a.verify]\nbudget = \"lots\"\n", []string{"6 jobs.a.verify.budget invalid verify budget"}},
		{"alert nowhere", job + "[jobs.a.alert]\nafter = \"15m\"\n", []string{"5 jobs.a.alert command, url"}},
		{"alert bad url", job + "[jobs.a.alert]\nurl = \"ftp://x\"\n", []string{"6 jobs.a.alert.url http"}},
		{"same set", job + "[jobs.b]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = [\"/a/\"]\n", []string{"8 jobs.b.paths same paths"}},
		{"several at once", "[jobs.a]\nrepository = \"/r\"\npassword_file = \"pw\"\npaths = [\"/a\"]\ncompression = \"max\"\n[jobs.a.trigger]\nretry = \"0\"\n",
			[]string{"3 jobs.a.password_file absolute", "5 jobs.a.compression want off", "7 jobs.a.trigger.retry more than 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.text))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("want Errors, got %v", err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, w := range tc.want {
				parts := strings.SplitN(w, " ", 3)
				e := es[i]
				if e.File != "t.toml" || parts[0] != itoa(e.Line) || parts[1] != e.Key || !strings.Contains(e.Msg, parts[2]) {
					t.Errorf("error %d: got line %d key %q msg %q; want %q", i, e.Line, e.Key, e.Msg, w)
				}
				if !strings.HasPrefix(e.Error(), "t.toml:") {
					t.Errorf("error text %q does not name the file", e.Error())
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10s": 10 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "0": 0, "off": 0} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10", "d", "1.5d", "-5m", "99999999999999d", "1x"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "127.1.2.3": true,
		"0.0.0.0": false, "": false, "192.168.1.2": false, "example.com": false, "::": false} {
		if IsLoopback(host) != want {
			t.Errorf("IsLoopback(%q) = %v", host, !want)
		}
	}
	for _, ok := range []string{"127.0.0.1:7420", "[::1]:1", "localhost:80"} {
		if err := checkListen(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if err := checkListen("0.0.0.0:7420", true); err != nil {
		t.Errorf("with TLS: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte("s3cret\r\nignored\n"), 0o600)
	t.Setenv("TIDEMARK_TEST_PW", "from-env")
	ctx := context.Background()
	for _, tc := range []struct {
		s    Secret
		want string
	}{
		{Secret{File: file}, "s3cret"},
		{Secret{Command: "printf 'from-cmd\\nrest'"}, "from-cmd"},
		{Secret{Env: "TIDEMARK_TEST_PW"}, "from-env"},
	} {
		got, err := tc.s.Resolve(ctx)
		if err != nil || string(got) != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.s, got, err, tc.want)
		}
		if tc.s.Command == "" && strings.Contains(tc.s.String(), tc.want) {
			t.Errorf("%v names the secret", tc.s)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, s := range []Secret{{File: filepath.Join(dir, "missing")}, {File: empty}, {Command: "echo oops >&2; exit 3"}, {Command: "true"},
		{Env: "TIDEMARK_TEST_UNSET"}, {}} {
		if _, err := s.Resolve(ctx); err == nil {
			t.Errorf("%v resolved", s)
		}
	}
	_, err := Secret{Command: "echo oops >&2; exit 3"}.Resolve(ctx)
	if err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("command error does not carry its stderr: %v", err)
	}
}

func TestDiff(t *testing.T) {
	old, err := Parse("a", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("diff with itself: %v", d)
	}
	changed := strings.Replace(example, `settle = "10s"`, `settle = "30s"`, 1)
	changed = strings.Replace(changed, "max_parallel = 3", "max_parallel = 1\nstate_dir = \"/var/lib/tm\"", 1)
	changed = strings.Replace(changed, "[jobs.etc]", "[jobs.srv]\nrepository = \"/r\"\npassword_env = \"PW\"\npaths = [\"/srv\"]\n[jobs.etc]", 1)
	changed = strings.Replace(changed, `password_file = "/etc/tidemark/home.pass"`, `password_env = "HOME_PW"`, 1)
	nw, err := Parse("b", []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	got := Diff(old, nw)
	want := []string{
		"server.state_dir: (none) -> /var/lib/tm (takes effect when tidemark run restarts)",
		"server.max_parallel: 3 -> 1",
		"job home: password: password_file /etc/tidemark/home.pass -> password_env HOME_PW",
		"job home: trigger.settle: 10s -> 30s",
		"job srv: added (/srv into /r)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := Diff(nw, old); !slices.Contains(d, "job srv: removed") {
		t.Errorf("reverse diff: %v", d)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tidemark.toml")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "read configuration") {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(path, []byte(example), 0o644)
	cfg, err := Load(path)
	if err != nil || cfg.File != path {
		t.Fatalf("%v %v", cfg, err)
	}
}

// TestREADMEExample keeps the README's complete example valid.
func TestREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip(err)
	}
	s := string(b)
	i := strings.Index(s, "## Continuous backup (`tidemark run`)")
	j := strings.Index(s[max(i, 0):], "```toml\n")
	if i < 0 || j < 0 {
		t.Fatal("the README has no configuration example under \"Continuous backup\"")
	}
	text := s[i+j+len("```toml\n"):]
	text = text[:strings.Index(text, "```")]
	cfg, err := Parse("README.md", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	j0 := cfg.Job("home")
	if j0 == nil || j0.Retention == nil || !j0.Verify.On() || j0.Alert.After == 0 || j0.Hooks.Before == "" {
		t.Errorf("the example does not show every table: %+v", j0)
	}
}
