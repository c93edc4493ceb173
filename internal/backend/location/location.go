// Package location turns a repository location given by the user into a
// backend: a local directory, "sftp:..." or "s3:...", wrapped with retries
// for the remote ones and with the rate limits asked for.
package location

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/limit"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/backend/retry"
	"github.com/tidemark/tidemark/internal/backend/s3"
	"github.com/tidemark/tidemark/internal/backend/sftp"
)

// Options are the settings a location string cannot carry.
type Options struct {
	// S3Region and S3BucketLookup ("auto", "path", "dns") override the
	// defaults of s3: locations.
	S3Region, S3BucketLookup string
	// SFTPInsecureHostKey accepts a host key that known_hosts does not
	// list (or lists differently).
	SFTPInsecureHostKey bool
	// UploadKiB and DownloadKiB limit transfer rates (0: unlimited).
	UploadKiB, DownloadKiB int
	// Retry is told about each retried call (nil: silent).
	Retry func(op string, h backend.Handle, err error, attempt int, wait time.Duration)
}

// Kind reports the backend a location names: "local", "sftp" or "s3".
func Kind(loc string) string {
	switch {
	case strings.HasPrefix(loc, "s3:"):
		return "s3"
	case strings.HasPrefix(loc, "sftp:"):
		return "sftp"
	}
	return "local"
}

// Open opens the backend of an existing repository.
func Open(ctx context.Context, loc string, opt Options) (backend.Backend, error) {
	return open(ctx, loc, opt, false)
}

// Create opens the backend for a new repository, creating the directory or
// bucket as needed.
func Create(ctx context.Context, loc string, opt Options) (backend.Backend, error) {
	return open(ctx, loc, opt, true)
}

func open(ctx context.Context, loc string, opt Options, create bool) (backend.Backend, error) {
	if opt.UploadKiB < 0 || opt.DownloadKiB < 0 {
		return nil, fmt.Errorf("--limit-upload/--limit-download must not be negative")
	}
	var (
		be        backend.Backend
		permanent func(error) bool
		err       error
	)
	switch Kind(loc) {
	case "s3":
		cfg, perr := s3.ParseLocation(loc)
		if perr != nil {
			return nil, perr
		}
		if opt.S3Region != "" {
			cfg.Region = opt.S3Region
		}
		if opt.S3BucketLookup != "" {
			cfg.BucketLookup = opt.S3BucketLookup
		}
		if create {
			be, err = s3.Create(ctx, cfg)
		} else {
			be, err = s3.Open(ctx, cfg)
		}
		permanent = s3.IsPermanent
	case "sftp":
		cfg, perr := sftp.ParseLocation(loc)
		if perr != nil {
			return nil, perr
		}
		cfg.InsecureIgnoreHostKey = opt.SFTPInsecureHostKey
		if create {
			be, err = sftp.Create(ctx, cfg)
		} else {
			be, err = sftp.Open(ctx, cfg)
		}
		permanent = sftp.IsPermanent
	default:
		dir := strings.TrimPrefix(loc, "local:")
		if create {
			be, err = local.Create(dir)
		} else {
			be, err = local.Open(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	if permanent != nil {
		// Local disks do not have transient failures worth retrying.
		be = retry.New(be, retry.Options{Permanent: permanent, Report: opt.Retry})
	}
	return limit.New(be, opt.UploadKiB, opt.DownloadKiB), nil
}
