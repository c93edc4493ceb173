// Package api serves `tidemark run`'s JSON API: the jobs and their status,
// their snapshots, a backup now, pause and resume, the operation log, a
// server-sent-events stream of state changes, progress and log lines, and
// Prometheus metrics. Every request needs the bearer token; without it
// the answer is 401 and nothing else. The server listens on loopback, or
// beyond only over TLS (config refuses anything else, and Listen checks
// again). The web UI of a later issue is built on the same endpoints.
//
// Endpoints (all GET unless said):
//
//	/api/v1/status                   the daemon and every job
//	/api/v1/jobs                     every job's status
//	/api/v1/jobs/{job}               one job's status
//	/api/v1/jobs/{job}/snapshots     the job's snapshots, oldest first
//	POST /api/v1/jobs/{job}/backup   back up now (202)
//	POST /api/v1/jobs/{job}/pause    stop automatic operations
//	POST /api/v1/jobs/{job}/resume   start them again
//	/api/v1/operations?job=&before=&limit=   the operation log, newest first
//	/api/v1/events                   server-sent events (state, progress, operation, log)
//	/api/v1/config                   the configuration file the daemon runs with
//	/metrics                         Prometheus text format
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/daemon"
)

// Backend is what the API serves: the daemon.
type Backend interface {
	Status() daemon.DaemonStatus
	Jobs() []daemon.JobStatus
	Job(name string) (daemon.JobStatus, error)
	Snapshots(ctx context.Context, job string) ([]app.SnapshotInfo, error)
	BackupNow(job string) error
	Pause(job string, paused bool) error
	Operations(ctx context.Context, job string, before int64, limit int) ([]daemon.Operation, error)
	Subscribe() (<-chan daemon.Event, func())
	Config() *config.Config
}

// StatusResponse is /api/v1/status.
type StatusResponse struct {
	Daemon daemon.DaemonStatus `json:"daemon"`
	Jobs   []daemon.JobStatus  `json:"jobs"`
}

// ConfigResponse is /api/v1/config.
type ConfigResponse struct {
	File   string `json:"file"`
	Source string `json:"source"`
}

// Handler returns the API's handler. token is asked at every request, so
// that a reload can change it.
func Handler(b Backend, token func() string) http.Handler {
	h := &handler{b: b}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", h.status)
	mux.HandleFunc("GET /api/v1/jobs", h.jobs)
	mux.HandleFunc("GET /api/v1/jobs/{job}", h.job)
	mux.HandleFunc("GET /api/v1/jobs/{job}/snapshots", h.snapshots)
	mux.HandleFunc("POST /api/v1/jobs/{job}/backup", h.backup)
	mux.HandleFunc("POST /api/v1/jobs/{job}/pause", h.pause(true))
	mux.HandleFunc("POST /api/v1/jobs/{job}/resume", h.pause(false))
	mux.HandleFunc("GET /api/v1/operations", h.operations)
	mux.HandleFunc("GET /api/v1/events", h.events)
	mux.HandleFunc("GET /api/v1/config", h.config)
	mux.HandleFunc("GET /metrics", h.metrics)
	return authorize(token, mux)
}

// authorize refuses every request without the bearer token, before
// routing: an unauthenticated client learns nothing, not even which
// paths exist.
func authorize(token func() string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := token()
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if want == "" || !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (the token is in the server's token_file)")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type handler struct{ b Backend }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

// fail answers with the status an error deserves.
func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, daemon.ErrNoJob) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, StatusResponse{Daemon: h.b.Status(), Jobs: h.b.Jobs()})
}

func (h *handler) jobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.Jobs())
}

func (h *handler) job(w http.ResponseWriter, r *http.Request) {
	s, err := h.b.Job(r.PathValue("job"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) snapshots(w http.ResponseWriter, r *http.Request) {
	sns, err := h.b.Snapshots(r.Context(), r.PathValue("job"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sns)
}

func (h *handler) backup(w http.ResponseWriter, r *http.Request) {
	if err := h.b.BackupNow(r.PathValue("job")); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Requested bool `json:"requested"`
	}{true})
}

func (h *handler) pause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("job")
		if err := h.b.Pause(name, paused); err != nil {
			fail(w, err)
			return
		}
		h.job(w, r)
	}
}

func (h *handler) operations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var before int64
	limit := 100
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "before: want an operation ID")
			return
		}
		before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		limit = n
	}
	ops, err := h.b.Operations(r.Context(), q.Get("job"), before, limit)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ops)
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	c := h.b.Config()
	writeJSON(w, http.StatusOK, ConfigResponse{File: c.File, Source: string(c.Source)})
}

// sseHeartbeat keeps idle event streams (and proxies) from timing out.
const sseHeartbeat = 15 * time.Second

// events streams the daemon's events: first every job's state, then
// whatever happens, each as an SSE event named by its type.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, stop := h.b.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	send := func(ev daemon.Event) bool {
		data, err := json.Marshal(ev)
		if err != nil {
			return true
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	now := time.Now().UTC()
	for _, s := range h.b.Jobs() {
		s := s
		if !send(daemon.Event{Time: now, Type: daemon.EventState, Job: s.Name, Status: &s}) {
			return
		}
	}
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok || !send(ev) {
				return
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// Server is the API listening on its address.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	once sync.Once
	// stop ends the requests' contexts, so that event streams end at
	// Close instead of holding the shutdown.
	stop context.CancelFunc
}

// Listen starts serving h on the server settings' address: plain HTTP on
// loopback, HTTPS with the configured certificate anywhere. An address
// beyond loopback without TLS is refused.
func Listen(s config.Server, h http.Handler) (*Server, error) {
	host, _, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return nil, fmt.Errorf("API address %q: %w", s.Listen, err)
	}
	useTLS := s.TLSCert != ""
	if !useTLS && !config.IsLoopback(host) {
		return nil, fmt.Errorf("API address %q is not a loopback address: refusing to serve it without TLS", s.Listen)
	}
	base, stop := context.WithCancel(context.Background())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			stop()
			return nil, fmt.Errorf("API TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		stop()
		return nil, fmt.Errorf("API: %w", err)
	}
	if useTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	sv := &Server{srv: srv, ln: ln, done: make(chan error, 1), stop: stop}
	go func() { sv.done <- srv.Serve(ln) }()
	return sv, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: open event streams end, requests in flight get
// a moment to finish.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		<-s.done
	})
	return err
}
