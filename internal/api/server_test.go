package api

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/daemon"
)

// fakeDaemon is a Backend with fixed jobs that records what it is asked.
type fakeDaemon struct {
	mu        sync.Mutex
	jobs      []daemon.JobStatus
	requested []string
	paused    map[string]bool
	events    chan daemon.Event
}

func newFake() *fakeDaemon {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &fakeDaemon{
		jobs: []daemon.JobStatus{
			{Name: "home", State: "idle", LastSuccess: &last, LastBackup: &daemon.BackupFacts{Snapshot: "abc", Duration: 1500 * time.Millisecond, BytesAdded: 42},
				Counters: daemon.Counters{Backups: 3, ByMode: map[string]uint64{"journal": 2, "full": 1}}},
			{Name: `we"ird`, State: "pending", RecoveryPoint: 12.5, Failures: 2},
		},
		paused: map[string]bool{},
		events: make(chan daemon.Event, 8),
	}
}

func (f *fakeDaemon) Status() daemon.DaemonStatus {
	return daemon.DaemonStatus{PID: 1, WatcherUp: true, Started: time.Unix(1000, 0)}
}
func (f *fakeDaemon) Jobs() []daemon.JobStatus { return f.jobs }
func (f *fakeDaemon) Job(name string) (daemon.JobStatus, error) {
	for _, j := range f.jobs {
		if j.Name == name {
			f.mu.Lock()
			j.Paused = f.paused[name]
			f.mu.Unlock()
			return j, nil
		}
	}
	return daemon.JobStatus{}, fmt.Errorf("%w: %q", daemon.ErrNoJob, name)
}
func (f *fakeDaemon) Snapshots(ctx context.Context, job string) ([]app.SnapshotInfo, error) {
	if _, err := f.Job(job); err != nil {
		return nil, err
	}
	return []app.SnapshotInfo{{Host: "h"}}, nil
}
func (f *fakeDaemon) BackupNow(job string) error {
	if _, err := f.Job(job); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requested = append(f.requested, job)
	return nil
}
func (f *fakeDaemon) Pause(job string, paused bool) error {
	if _, err := f.Job(job); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[job] = paused
	return nil
}
func (f *fakeDaemon) Operations(ctx context.Context, job string, before int64, limit int) ([]daemon.Operation, error) {
	return []daemon.Operation{{ID: 7, Job: "home", Kind: daemon.OpBackup, Outcome: daemon.OutcomeOK}}, nil
}
func (f *fakeDaemon) Subscribe() (<-chan daemon.Event, func()) { return f.events, func() {} }
func (f *fakeDaemon) Config() *config.Config {
	return &config.Config{File: "/etc/tidemark/tidemark.toml", Source: []byte("[jobs.home]\n")}
}

const testToken = "s3cret-token"

func do(t *testing.T, srv *httptest.Server, method, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp, b.String()
}

func TestAuthorization(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(Handler(f, func() string { return testToken }))
	defer srv.Close()
	for _, path := range []string{"/api/v1/jobs", "/api/v1/status", "/metrics", "/api/v1/events", "/api/v1/config", "/nope", "/"} {
		for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken)} {
			resp, body := do(t, srv, http.MethodGet, path, tok)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with token %q: HTTP %d", path, tok, resp.StatusCode)
			}
			if strings.Contains(body, "home") || strings.Contains(body, "tidemark_") {
				t.Errorf("GET %s without the token leaked data: %s", path, body)
			}
		}
	}
	resp, _ := do(t, srv, http.MethodPost, "/api/v1/jobs/home/backup", "")
	if resp.StatusCode != http.StatusUnauthorized || len(f.requested) != 0 {
		t.Errorf("backup without token: HTTP %d, requested %v", resp.StatusCode, f.requested)
	}
	// Basic auth with the token as password is not a bearer token.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/jobs", nil)
	req.SetBasicAuth("x", testToken)
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("basic auth: %v %v", resp.StatusCode, err)
	}
	// A server without a token serves nothing at all.
	empty := httptest.NewServer(Handler(f, func() string { return "" }))
	defer empty.Close()
	if resp, _ := do(t, empty, http.MethodGet, "/api/v1/jobs", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token configured: HTTP %d", resp.StatusCode)
	}
	if resp, _ := do(t, empty, http.MethodGet, "/api/v1/jobs", "Bearer "); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token configured, empty bearer: HTTP %d", resp.StatusCode)
	}
}

func TestEndpoints(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(Handler(f, func() string { return testToken }))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/api/v1/status", 200, `"watcher_up": true`},
		{"GET", "/api/v1/jobs", 200, `"name": "home"`},
		{"GET", "/api/v1/jobs/home", 200, `"snapshot": "abc"`},
		{"GET", "/api/v1/jobs/nope", 404, "no such job"},
		{"GET", "/api/v1/jobs/home/snapshots", 200, `"host": "h"`},
		{"GET", "/api/v1/jobs/nope/snapshots", 404, "no such job"},
		{"POST", "/api/v1/jobs/home/backup", 202, `"requested": true`},
		{"GET", "/api/v1/jobs/home/backup", 405, ""},
		{"POST", "/api/v1/jobs/nope/backup", 404, "no such job"},
		{"POST", "/api/v1/jobs/home/pause", 200, `"paused": true`},
		{"POST", "/api/v1/jobs/home/resume", 200, `"paused": false`},
		{"GET", "/api/v1/operations?job=home&limit=5", 200, `"id": 7`},
		{"GET", "/api/v1/operations?limit=0", 400, "limit"},
		{"GET", "/api/v1/operations?before=x", 400, "before"},
		{"GET", "/api/v1/config", 200, `"source": "[jobs.home]\n"`},
		{"GET", "/api/v2/whatever", 404, "not found"},
	} {
		resp, body := do(t, srv, tc.method, tc.path, testToken)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: HTTP %d, want %d with %q:\n%s", tc.method, tc.path, resp.StatusCode, tc.code, tc.want, body)
		}
	}
	if strings.Join(f.requested, ",") != "home" {
		t.Errorf("backups requested: %v", f.requested)
	}
}

// sampleLine is a sample of the Prometheus text format.
var sampleLine = regexp.MustCompile(`^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? [-+0-9.e]+$`)

func TestMetricsFormat(t *testing.T) {
	srv := httptest.NewServer(Handler(newFake(), func() string { return testToken }))
	defer srv.Close()
	resp, body := do(t, srv, http.MethodGet, "/metrics", testToken)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	typed := map[string]bool{}
	seenSample := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(l, "# TYPE ") {
			name := strings.Fields(l)[2]
			if typed[name] || seenSample[name] {
				t.Errorf("TYPE of %s repeated or after its samples", name)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(l, "# HELP ") {
			continue
		}
		if !sampleLine.MatchString(l) {
			t.Errorf("not a sample line: %q", l)
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		if !typed[name] {
			t.Errorf("sample of %s without TYPE", name)
		}
		seenSample[name] = true
	}
	for _, want := range []string{
		`tidemark_job_recovery_point_seconds{job="we\"ird"} 12.5`,
		`tidemark_job_last_backup_duration_seconds{job="home"} 1.5`,
		`tidemark_job_backups_by_scan_mode_total{job="home",mode="journal"} 2`,
		`tidemark_job_consecutive_failures{job="we\"ird"} 2`,
		"tidemark_watcher_up 1",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	if strings.Contains(body, `tidemark_job_last_success_timestamp_seconds{job="we\"ird"}`) {
		t.Error("a job that never succeeded has a last success time")
	}
}

func TestEventStream(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(Handler(f, func() string { return testToken }))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	f.events <- daemon.Event{Type: daemon.EventLog, Job: "home", Message: "hello"}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for len(got) < 3 && sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			got = append(got, name)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev daemon.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("data %q: %v", data, err)
			}
			if ev.Type == daemon.EventLog && ev.Message != "hello" {
				t.Errorf("log event %+v", ev)
			}
		}
	}
	// Every job's state first, then what happens.
	if strings.Join(got, ",") != "state,state,log" {
		t.Errorf("events %v", got)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tidemark test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

func TestListenAndClient(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	h := Handler(newFake(), func() string { return testToken })

	// Beyond loopback without TLS: refused.
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		if srv, err := Listen(config.Server{Listen: addr}, h); err == nil {
			srv.Close()
			t.Errorf("listening on %s without TLS", addr)
		}
	}
	ctx := context.Background()
	srv, err := Listen(config.Server{Listen: "127.0.0.1:0"}, h)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(config.Server{Listen: srv.Addr()}, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var st StatusResponse
	if err := c.Get(ctx, "/api/v1/status", &st); err != nil || len(st.Jobs) != 2 || st.Daemon.PID != 1 {
		t.Fatalf("status over HTTP: %+v %v", st, err)
	}
	if err := c.Post(ctx, "/api/v1/jobs/nope/backup", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown job: %v", err)
	}
	addr := srv.Addr()
	srv.Close()
	if err := c.Get(ctx, "/api/v1/status", &st); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("after close: %v", err)
	}
	os.WriteFile(tokenFile, []byte("other\n"), 0o600)
	srv, err = Listen(config.Server{Listen: addr}, h)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = NewClient(config.Server{Listen: addr}, tokenFile)
	if err := c.Get(ctx, "/api/v1/status", &st); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	srv.Close()

	// With TLS, and a client trusting the configured certificate.
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	cert, key := selfSigned(t, dir)
	s := config.Server{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key}
	srv, err = Listen(s, h)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s.Listen = srv.Addr()
	c, err = NewClient(s, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "/api/v1/status", &st); err != nil {
		t.Fatalf("status over TLS: %v", err)
	}
	if _, err := NewClient(config.Server{Listen: "127.0.0.1:1"}, filepath.Join(dir, "missing")); err == nil {
		t.Error("client without a token file")
	}
}
