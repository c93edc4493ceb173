package s3

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config describes where a repository lives in S3-compatible storage and
// how to reach it.
type Config struct {
	// Endpoint is the server's host[:port], without scheme.
	Endpoint string
	// Secure selects HTTPS. Plain HTTP is only used when the location
	// says http:// explicitly, because credentials and data would
	// otherwise cross the network in the clear.
	Secure bool
	// Bucket holds the repository.
	Bucket string
	// Prefix is the key prefix of the repository inside the bucket,
	// without leading or trailing slashes; empty for the bucket's root.
	Prefix string
	// Region is the bucket's region. Empty means AWS_REGION, then
	// AWS_DEFAULT_REGION, then asking the server.
	Region string
	// BucketLookup selects how the bucket is addressed: "auto" (or
	// empty), "path" (https://host/bucket/key) or "dns"
	// (https://bucket.host/key).
	BucketLookup string

	// Static credentials. When both keys are empty the usual AWS sources
	// are tried instead: environment, shared credentials file, instance
	// role.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// String returns the location in the syntax ParseLocation accepts. It
// never includes credentials.
func (c Config) String() string {
	scheme := "https"
	if !c.Secure {
		scheme = "http"
	}
	s := "s3:" + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		s += "/" + c.Prefix
	}
	return s
}

// ParseLocation parses a repository location of one of the forms
//
//	s3:https://host[:port]/bucket[/prefix]
//	s3:http://host[:port]/bucket[/prefix]
//	s3:host[:port]/bucket[/prefix]          (HTTPS)
//
// The "s3:" may be left out. The returned Config has no credentials and
// BucketLookup "auto"; the caller fills those in from its options.
func ParseLocation(loc string) (Config, error) {
	fail := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("s3 location %q: %s", loc, fmt.Sprintf(format, args...))
	}
	rest := strings.TrimPrefix(loc, "s3:")
	if rest == "" {
		return fail("empty location")
	}
	cfg := Config{Secure: true, BucketLookup: "auto"}
	switch {
	case strings.HasPrefix(strings.ToLower(rest), "https://"):
		rest = rest[len("https://"):]
	case strings.HasPrefix(strings.ToLower(rest), "http://"):
		rest = rest[len("http://"):]
		cfg.Secure = false
	case strings.Contains(rest, "://"):
		return fail("unsupported scheme %q (use https:// or http://)", rest[:strings.Index(rest, "://")])
	}
	// Parse the remainder as an HTTPS URL so host and port follow the
	// usual rules (IPv6 brackets, port range) whatever scheme was given.
	u, err := url.Parse("https://" + rest)
	if err != nil {
		return fail("%v", unwrapURLError(err))
	}
	if u.User != nil {
		// Keys in a location end up in logs and shell history.
		return fail("credentials do not belong in the location; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(rest, "?#") {
		return fail("query strings and fragments are not supported")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fail("missing host")
	}
	if p := u.Port(); p == "" && strings.HasSuffix(u.Host, ":") {
		return fail("empty port")
	}
	cfg.Endpoint = u.Host

	p := strings.TrimPrefix(u.Path, "/")
	bucket, prefix, _ := strings.Cut(p, "/")
	if bucket == "" {
		return fail("missing bucket (want s3:https://host/bucket[/prefix])")
	}
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return fail("invalid bucket name %q: %v", bucket, err)
	}
	cfg.Bucket = bucket

	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			// Empty, "." and ".." segments are legal S3 keys but would
			// make a prefix that means something else to every tool
			// that treats keys as paths.
			if seg == "" || seg == "." || seg == ".." {
				return fail("invalid prefix %q", prefix)
			}
		}
	}
	cfg.Prefix = prefix
	return cfg, nil
}

// unwrapURLError drops url.Error's repetition of the whole input, which
// the caller names already.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
