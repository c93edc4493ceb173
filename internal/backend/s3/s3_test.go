package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/backendtest"
	"github.com/tidemark/tidemark/internal/backend/s3/s3test"
)

// Backend must satisfy the interface; checked here rather than with a
// package-level variable in the package itself.
var _ backend.Backend = (*Backend)(nil)

// server starts versitygw and returns a Config for bucket/prefix on it.
func server(t *testing.T, bucket, prefix string) Config {
	t.Helper()
	srv := s3test.Start(t)
	endpoint, access, secret := srv.Endpoint, srv.AccessKey, srv.SecretKey
	return Config{
		Endpoint:        endpoint,
		Bucket:          bucket,
		Prefix:          prefix,
		AccessKeyID:     access,
		SecretAccessKey: secret,
	}
}

func TestConformance(t *testing.T) {
	cfg := server(t, "tidemark-test", "repo/one")
	ctx := context.Background()
	b, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.Run(t, b, backendtest.Options{DetectsExisting: false})
}

// TestLayout checks the keys are those of the local backend's files, and
// that two repositories in one bucket do not see each other.
func TestLayout(t *testing.T) {
	cfg := server(t, "layout", "a/b")
	ctx := context.Background()
	b, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []backend.Handle{
		{Type: backend.Config},
		{Type: backend.Key, Name: "k1"},
		{Type: backend.Data, Name: "abcd"},
		{Type: backend.Tree, Name: "ef01"},
		{Type: backend.Index, Name: "i1"},
		{Type: backend.Snapshot, Name: "s1"},
		{Type: backend.Lock, Name: "l1"},
	} {
		if err := b.Save(ctx, h, []byte(h.String())); err != nil {
			t.Fatal(err)
		}
	}
	other := cfg
	other.Prefix = "a/bc" // shares a string prefix, not a key prefix
	ob, err := Open(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Save(ctx, backend.Handle{Type: backend.Index, Name: "i2"}, nil); err != nil {
		t.Fatal(err)
	}

	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for obj := range client.ListObjectsIter(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	sort.Strings(keys)
	want := []string{
		"a/b/config",
		"a/b/data/ab/abcd",
		"a/b/index/i1",
		"a/b/keys/k1",
		"a/b/locks/l1",
		"a/b/snapshots/s1",
		"a/b/trees/ef/ef01",
		"a/bc/index/i2",
	}
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	var names []string
	if err := b.List(ctx, backend.Index, func(n string, _ int64) error { names = append(names, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "i1" {
		t.Fatalf("index listing of a/b: %v", names)
	}
	if want := "s3:http://" + cfg.Endpoint + "/layout/a/b"; b.Location() != want {
		t.Fatalf("location %q, want %q", b.Location(), want)
	}
}

// TestLoadEdges checks the reads the conformance suite does not: the
// exact error of a short read, reads at and past the end, a pack-sized
// object (one PUT) and an empty object.
func TestLoadEdges(t *testing.T) {
	cfg := server(t, "edges", "")
	ctx := context.Background()
	b, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.Data, Name: "0011"}
	if err := b.Save(ctx, h, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, h, 4, 10)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !IsPermanent(err) || string(got) != "456789" {
		t.Fatalf("short read: %q, %v (permanent %v)", got, err, IsPermanent(err))
	}
	if _, err := b.Load(ctx, h, 20, 5); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the end: %v", err)
	}
	if got, err := b.Load(ctx, h, 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("read to the end at the end: %q, %v", got, err)
	}
	if _, err := b.Load(ctx, h, 11, 0); err == nil {
		t.Fatal("read to the end beyond the end succeeded")
	}
	if _, err := b.Load(ctx, h, -1, 0); err == nil {
		t.Fatal("negative offset accepted")
	}

	big := bytes.Repeat([]byte("tidemark"), 2<<20) // 16 MiB, a full pack
	bh := backend.Handle{Type: backend.Data, Name: "ffbig"}
	if err := b.Save(ctx, bh, big); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Stat(ctx, bh); err != nil || n != int64(len(big)) {
		t.Fatalf("stat pack: %d, %v", n, err)
	}
	got, err = b.Load(ctx, bh, 1<<20, 8)
	if err != nil || string(got) != "tidemark" {
		t.Fatalf("load from pack: %q, %v", got, err)
	}
	if got, err := backend.LoadAll(ctx, b, bh); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("load whole pack: %d bytes, %v", len(got), err)
	}

	// Saving again overwrites (documented: S3 cannot refuse cheaply).
	if err := b.Save(ctx, h, []byte("x")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if err := b.List(ctx, backend.Config, func(string, int64) error { return nil }); err == nil {
		t.Fatal("listing config succeeded")
	}
}

func TestListCancelled(t *testing.T) {
	cfg := server(t, "cancel", "")
	b, err := Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = b.List(ctx, backend.Index, func(string, int64) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("list with a cancelled context: %v", err)
	}
}

func TestOpenMissingBucket(t *testing.T) {
	cfg := server(t, "nosuchbucket", "")
	_, err := Open(context.Background(), cfg)
	if err == nil {
		t.Fatal("opened a missing bucket")
	}
	want := fmt.Sprintf("bucket %q does not exist at %s", "nosuchbucket", cfg.Endpoint)
	if !strings.Contains(err.Error(), want) || !IsPermanent(err) {
		t.Fatalf("error %q (permanent %v) does not say %q", err, IsPermanent(err), want)
	}
	t.Log(err)
	// With a region the first request is a HEAD, whose 404 has no body.
	withRegion := cfg
	withRegion.Region = "us-east-1"
	if _, err := Open(context.Background(), withRegion); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("with region: %v", err)
	}
	// Create makes it, after which Open succeeds.
	if _, err := Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func TestWrongCredentials(t *testing.T) {
	cfg := server(t, "creds", "")
	if _, err := Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// With no region the first request asks for the bucket's location;
	// with one it is a HEAD, whose error answers have no body.
	for name, change := range map[string]func(*Config){
		"secret":                 func(c *Config) { c.SecretAccessKey += "x" },
		"access key":             func(c *Config) { c.AccessKeyID = "nobody" },
		"secret with region":     func(c *Config) { c.SecretAccessKey += "x"; c.Region = "us-east-1" },
		"access key with region": func(c *Config) { c.AccessKeyID = "nobody"; c.Region = "us-east-1" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := cfg
			change(&bad)
			_, err := Open(context.Background(), bad)
			if err == nil {
				t.Fatal("opened with wrong credentials")
			}
			if !IsPermanent(err) || !strings.Contains(err.Error(), "access denied") ||
				!strings.Contains(err.Error(), "credentials") {
				t.Fatalf("error %q (permanent %v) does not blame the credentials", err, IsPermanent(err))
			}
			t.Log(err)
			if strings.Contains(err.Error(), bad.SecretAccessKey) {
				t.Fatalf("error %q shows the secret key", err)
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	good := []struct {
		loc  string
		want Config
	}{
		{"s3:https://s3.amazonaws.com/bucket", Config{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "bucket"}},
		{"s3:https://s3.amazonaws.com/bucket/", Config{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "bucket"}},
		{"s3:https://host:9000/bucket/a/b", Config{Endpoint: "host:9000", Secure: true, Bucket: "bucket", Prefix: "a/b"}},
		{"s3:https://host/bucket/a/b/", Config{Endpoint: "host", Secure: true, Bucket: "bucket", Prefix: "a/b"}},
		{"s3:http://127.0.0.1:7070/bucket/repo", Config{Endpoint: "127.0.0.1:7070", Bucket: "bucket", Prefix: "repo"}},
		{"s3:HTTP://host/bucket", Config{Endpoint: "host", Bucket: "bucket"}},
		{"s3:host:9000/bucket/repo", Config{Endpoint: "host:9000", Secure: true, Bucket: "bucket", Prefix: "repo"}},
		{"s3:host/bucket", Config{Endpoint: "host", Secure: true, Bucket: "bucket"}},
		{"https://host/bucket/p", Config{Endpoint: "host", Secure: true, Bucket: "bucket", Prefix: "p"}},
		{"host/bucket", Config{Endpoint: "host", Secure: true, Bucket: "bucket"}},
		{"s3:http://[::1]:9000/bucket", Config{Endpoint: "[::1]:9000", Bucket: "bucket"}},
	}
	for _, tc := range good {
		got, err := ParseLocation(tc.loc)
		tc.want.BucketLookup = "auto"
		if err != nil {
			t.Errorf("%s: %v", tc.loc, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.loc, got, tc.want)
		}
		// String gives back a location that parses to the same Config.
		again, err := ParseLocation(got.String())
		if err != nil || again != got {
			t.Errorf("%s: round trip through %q: %+v, %v", tc.loc, got.String(), again, err)
		}
	}

	bad := []struct{ loc, msg string }{
		{"", "empty"},
		{"s3:", "empty"},
		{"s3:https://host", "missing bucket"},
		{"s3:https://host/", "missing bucket"},
		{"s3:host", "missing bucket"},
		{"s3:https:///bucket", "missing host"},
		{"s3:/bucket", "missing host"},
		{"s3:ftp://host/bucket", "unsupported scheme"},
		{"s3:https://key:secret@host/bucket", "credentials"},
		{"s3:https://host/bucket?x=1", "query"},
		{"s3:https://host/b", "invalid bucket name"},
		{"s3:https://host/Bad_Bucket!", "invalid bucket name"},
		{"s3:https://host/bucket/a//b", "invalid prefix"},
		{"s3:https://host/bucket/a/../b", "invalid prefix"},
		{"s3:https://host:/bucket", "port"},
		{"s3:https://host:x/bucket", "port"},
	}
	for _, tc := range bad {
		_, err := ParseLocation(tc.loc)
		if err == nil {
			t.Errorf("%q accepted", tc.loc)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.loc)) {
			t.Errorf("%q: error %q should name the location and say %q", tc.loc, err, tc.msg)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	resp := func(status int, code string) error {
		return fmt.Errorf("s3 load data/x: %w", minio.ErrorResponse{StatusCode: status, Code: code, Message: code})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"access denied", resp(403, "AccessDenied"), true},
		{"403 without code", resp(403, ""), true},
		{"no such bucket", resp(404, "NoSuchBucket"), true},
		{"no such key", resp(404, "NoSuchKey"), true},
		{"invalid access key", resp(403, "InvalidAccessKeyId"), true},
		{"signature", resp(403, "SignatureDoesNotMatch"), true},
		{"bad request", resp(400, "InvalidArgument"), true},
		{"invalid range", resp(416, "InvalidRange"), true},
		{"code only", resp(0, "AccessDenied"), true},
		{"408", resp(408, ""), false},
		{"request timeout as 400", resp(400, "RequestTimeout"), false},
		{"bad digest", resp(400, "BadDigest"), false},
		{"429", resp(429, ""), false},
		{"slow down", resp(503, "SlowDown"), false},
		{"500", resp(500, "InternalError"), false},
		{"502", resp(502, "502 Bad Gateway"), false},
		{"unknown code", resp(0, "Whatever"), false},
		{"not found", fmt.Errorf("s3 stat x: %w", backend.ErrNotFound), true},
		{"cancelled", fmt.Errorf("s3 save x: %w", context.Canceled), true},
		{"deadline", fmt.Errorf("s3 save x: %w", context.DeadlineExceeded), false},
		{"connection reset", &url.Error{Op: "Get", URL: "http://h/b", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}, false},
		{"timeout", &url.Error{Op: "Get", URL: "http://h/b", Err: timeoutError{}}, false},
		{"truncated body", fmt.Errorf("s3 load x: %w", io.ErrUnexpectedEOF), false},
		{"invalid name", permanentError{errors.New("invalid object name")}, true},
	}
	for _, tc := range cases {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestBadNamesNeedNoServer(t *testing.T) {
	b := &Backend{cfg: Config{Prefix: "p"}}
	for _, tc := range []struct {
		h    backend.Handle
		want string
	}{
		{backend.Handle{Type: backend.Config}, "p/config"},
		{backend.Handle{Type: backend.Data, Name: "ab12"}, "p/data/ab/ab12"},
		{backend.Handle{Type: backend.Tree, Name: "ab"}, "p/trees/ab/ab"},
		{backend.Handle{Type: backend.Snapshot, Name: "s"}, "p/snapshots/s"},
	} {
		if got, err := b.key(tc.h); err != nil || got != tc.want {
			t.Errorf("%v: key %q, %v; want %q", tc.h, got, err, tc.want)
		}
	}
	for _, h := range []backend.Handle{
		{Type: backend.Data, Name: "a"},
		{Type: backend.Index, Name: ""},
		{Type: backend.Index, Name: "."},
		{Type: backend.Index, Name: ".."},
		{Type: backend.Index, Name: ".hidden"},
		{Type: backend.Index, Name: "a/b"},
		{Type: backend.Index, Name: `a\b`},
		{Type: backend.Index, Name: "a\x00b"},
	} {
		if _, err := b.key(h); err == nil || !IsPermanent(err) {
			t.Errorf("%q: %v", h.Name, err)
		}
	}
}
