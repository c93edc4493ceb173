package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/config"
)

// Client talks to a running daemon's API, for `tidemark status` and
// `tidemark config check`.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// ErrNotRunning: nothing listens at the configured address.
var ErrNotRunning = errors.New("tidemark run is not running (nothing listens at the API address)")

// NewClient returns a client for the API the server settings describe,
// with the token read from tokenFile. Over TLS it trusts the configured
// certificate (typically self-signed) besides the system's roots.
func NewClient(s config.Server, tokenFile string) (*Client, error) {
	if s.Listen == "" {
		return nil, errors.New("the API is off (server.listen = \"off\")")
	}
	token, err := ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return nil, fmt.Errorf("API address %q: %w", s.Listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	scheme := "http"
	if s.TLSCert != "" {
		scheme = "https"
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(s.TLSCert); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: scheme + "://" + net.JoinHostPort(host, port), token: token, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// ReadToken reads an API token file (its first line).
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return tok, nil
}

// Get decodes the JSON answer of a GET of path into v.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, v)
}

// Post sends a POST to path and decodes its answer into v (nil: discard).
func (c *Client) Post(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodPost, path, v)
}

func (c *Client) do(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %v", ErrNotRunning, err)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}
