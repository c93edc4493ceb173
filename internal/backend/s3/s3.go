// Package s3 stores a repository in an S3-compatible object store (AWS
// S3, MinIO, Ceph RGW, versitygw, ...) through minio-go.
//
// # Layout
//
// Objects are laid out under the location's prefix exactly as the local
// backend lays out files in its directory, so a repository can be copied
// between the two with any file or object tool:
//
//	<prefix>/config
//	<prefix>/keys/<name>
//	<prefix>/data/<first 2 chars of name>/<name>
//	<prefix>/trees/<first 2 chars of name>/<name>
//	<prefix>/index/<name>
//	<prefix>/snapshots/<name>
//	<prefix>/locks/<name>
//
// # Atomicity
//
// An S3 PUT is atomic: the object becomes visible under its key only once
// the whole body has arrived (and, here, matched its Content-MD5), so a
// reader never sees a partial object and a failed upload leaves nothing
// behind. Objects up to 64 MiB (packs are 16 MiB) go up in one PUT;
// larger ones use a multipart upload, which is equally atomic: the object
// appears when the upload is completed.
//
// S3 cannot cheaply refuse to overwrite an existing key, so Save
// overwrites rather than failing with backend.ErrExists. That is harmless
// here: object names are content hashes (same name, same bytes) or random.
//
// # Retries
//
// minio-go's own retries are switched off; wrap the backend in
// internal/backend/retry with IsPermanent as its classifier, which retries
// with backoff and jitter and knows which failures are worth retrying.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tidemark/tidemark/internal/backend"
)

// singlePutMax is the largest object stored with one PUT; larger ones
// are uploaded in parts of this size. It is well above the 16 MiB pack
// size so packs are never multipart: one request, and one Content-MD5 over
// the whole object.
const singlePutMax = 64 << 20

// Backend is a repository in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	client *minio.Client
	cfg    Config
}

// Open connects to an existing bucket. It fails if the bucket does not
// exist or the credentials are rejected; it does not check for a
// repository inside, which is the repository layer's job.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 open %s: %w", cfg, err)
	}
	ok, err := b.bucketExists(ctx, "open")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("s3 open %s: %w", cfg, permanentError{fmt.Errorf(
			"bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)})
	}
	return b, nil
}

// Create connects and makes the bucket if it does not exist yet. An
// existing bucket, even one already holding objects under the prefix, is
// accepted: whether a repository exists there is for the repository layer
// (which looks for the config object) to decide.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 create %s: %w", cfg, err)
	}
	ok, err := b.bucketExists(ctx, "create")
	if err != nil {
		return nil, err
	}
	if ok {
		return b, nil
	}
	err = b.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: b.region()})
	switch code := errCode(err); {
	case err == nil, code == minio.BucketAlreadyOwnedByYou:
		// Lost a race with another creator using our account: fine.
		return b, nil
	case code == minio.BucketAlreadyExists:
		// Bucket names are global on AWS: someone else owns this one.
		return nil, fmt.Errorf("s3 create %s: bucket %q is owned by another account: %w", cfg, cfg.Bucket, err)
	default:
		return nil, b.connectError("create bucket", err)
	}
}

// connect makes the client; it does not talk to the server.
func connect(cfg Config) (*Backend, error) {
	lookup, err := bucketLookup(cfg.BucketLookup)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("endpoint and bucket are required")
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_REGION")
	}
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentialChain(cfg),
		Secure:       cfg.Secure,
		Region:       cfg.Region, // empty: minio asks the server
		BucketLookup: lookup,
		// One attempt per call: the retry wrapper above retries with
		// backoff and jitter, and stacking two retry loops would multiply
		// the attempts and hide failures for minutes.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, err
	}
	return &Backend{client: client, cfg: cfg}, nil
}

// credentialChain follows the AWS conventions, first source wins: keys
// given explicitly, then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
// AWS_SESSION_TOKEN, then the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE),
// then the instance or container role.
func credentialChain(cfg Config) *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.Static{Value: credentials.Value{
			AccessKeyID:     cfg.AccessKeyID,
			SecretAccessKey: cfg.SecretAccessKey,
			SessionToken:    cfg.SessionToken,
			SignerType:      credentials.SignatureV4,
		}},
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
}

func bucketLookup(s string) (minio.BucketLookupType, error) {
	switch s {
	case "", "auto":
		return minio.BucketLookupAuto, nil
	case "path":
		return minio.BucketLookupPath, nil
	case "dns":
		return minio.BucketLookupDNS, nil
	}
	return 0, fmt.Errorf("bucket lookup %q: want auto, path or dns", s)
}

// region is the region to create buckets in; the server's default when
// none was configured.
func (b *Backend) region() string { return b.cfg.Region }

// bucketExists is the first request to the server. A HEAD answer has no
// body, so minio-go takes any 404 for a missing bucket; but some servers
// (versitygw) answer an unknown access key with 404 too. A missing bucket
// is therefore confirmed with a listing, whose error answers carry a code.
func (b *Backend) bucketExists(ctx context.Context, op string) (bool, error) {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return false, b.connectError(op, err)
	}
	if ok {
		return true, nil
	}
	var listErr error
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		listErr = obj.Err
		break // stops the iterator: one request is enough
	}
	switch {
	case errCode(listErr) == minio.NoSuchBucket:
		return false, nil
	case listErr != nil:
		return false, b.connectError(op, listErr)
	case ctx.Err() != nil:
		// The iterator ends silently on cancellation.
		return false, fmt.Errorf("s3 %s %s: %w", op, b.cfg, ctx.Err())
	}
	// The listing worked: the bucket is there after all.
	return true, nil
}

// connectError explains a failure of the first request, which is where
// wrong endpoints and credentials show up.
func (b *Backend) connectError(op string, err error) error {
	if isAccessDenied(err) {
		return fmt.Errorf("s3 %s %s: access denied by %s: check the credentials "+
			"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy: %w",
			op, b.cfg, b.cfg.Endpoint, err)
	}
	return fmt.Errorf("s3 %s %s: %w", op, b.cfg, err)
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.cfg.String() }

// key returns the object key of h: the layout every backend shares,
// under the prefix.
func (b *Backend) key(h backend.Handle) (string, error) {
	p, err := backend.ObjectPath(h)
	if err != nil {
		return "", err
	}
	return b.join(p), nil
}

// join puts rel under the prefix.
func (b *Backend) join(rel string) string {
	if b.cfg.Prefix == "" {
		return rel
	}
	return b.cfg.Prefix + "/" + rel
}

// Save implements backend.Backend. It overwrites an existing object
// rather than failing with backend.ErrExists (see the package comment).
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3 save %s: %w", h, err)
	}
	key, err := b.key(h)
	if err != nil {
		return fmt.Errorf("s3 save %s: %w", h, err)
	}
	_, err = b.client.PutObject(ctx, b.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{
			ContentType: "application/octet-stream",
			PartSize:    singlePutMax,
			// The server checks the body against this digest and refuses
			// the object if it was damaged in transit.
			SendContentMd5: true,
		})
	if err != nil {
		return fmt.Errorf("s3 save %s: %w", h, err)
	}
	return nil
}

// Load implements backend.Backend. It reads the whole answer and fails,
// wrapping io.ErrUnexpectedEOF, when the object holds fewer bytes than
// asked for.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3 load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("s3 load %s: %w", h, permanentError{fmt.Errorf("invalid range: offset %d, length %d", offset, length)})
	}
	key, err := b.key(h)
	if err != nil {
		return nil, fmt.Errorf("s3 load %s: %w", h, err)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0) // to the end
	}
	if err != nil {
		return nil, fmt.Errorf("s3 load %s: %w", h, err)
	}
	obj, err := b.client.GetObject(ctx, b.cfg.Bucket, key, opts)
	if err != nil {
		return nil, b.objectError("load", h, err)
	}
	defer obj.Close()

	if length == 0 {
		// The request is only sent on the first read, so errors such as
		// a missing object appear here.
		buf, err := io.ReadAll(obj)
		if err != nil {
			if errCode(err) == minio.InvalidRange {
				return b.loadPastEnd(ctx, h, offset)
			}
			return nil, b.objectError("load", h, err)
		}
		return buf, nil
	}

	// Not io.ReadFull: it reports a complete but short answer and a
	// transfer cut short alike, and only the first is permanent.
	buf := make([]byte, length)
	n := 0
	var rerr error
	for n < len(buf) && rerr == nil {
		var m int
		m, rerr = obj.Read(buf[n:])
		n += m
	}
	switch {
	case n == len(buf):
		return buf, nil
	case errors.Is(rerr, io.EOF) || errCode(rerr) == minio.InvalidRange:
		// A complete answer that is shorter than the range: the object
		// is too small, and asking again will not make it bigger. (A
		// transfer cut short fails with a different error, which stays
		// retryable.)
		return buf[:n], fmt.Errorf("s3 load %s: %w", h, permanentError{fmt.Errorf(
			"%w (%d of %d bytes at %d): %w", backend.ErrShortObject, n, length, offset, io.ErrUnexpectedEOF)})
	default:
		return nil, b.objectError("load", h, rerr)
	}
}

// loadPastEnd answers a read to the end from an offset S3 rejected as
// unsatisfiable: an offset equal to the size is an empty read (as for a
// file), anything larger is an error.
func (b *Backend) loadPastEnd(ctx context.Context, h backend.Handle, offset int64) ([]byte, error) {
	size, err := b.Stat(ctx, h)
	if err != nil {
		return nil, err
	}
	if offset == size {
		return []byte{}, nil
	}
	return nil, fmt.Errorf("s3 load %s: %w", h, permanentError{fmt.Errorf("%w: offset %d beyond size %d", backend.ErrShortObject, offset, size)})
}

// objectError wraps an error of an operation on h, turning a missing
// object into backend.ErrNotFound.
func (b *Backend) objectError(op string, h backend.Handle, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3 %s %s: %w", op, h, backend.ErrNotFound)
	}
	return fmt.Errorf("s3 %s %s: %w", op, h, err)
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (int64, error) {
	key, err := b.key(h)
	if err != nil {
		return 0, fmt.Errorf("s3 stat %s: %w", h, err)
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, b.objectError("stat", h, err)
	}
	return info.Size, nil
}

// List implements backend.Backend. It reports base names, as the local
// backend does; minio-go follows the listing's continuation tokens.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(name string, size int64) error) error {
	if t == backend.Config {
		// config is one object, not a namespace (the local backend
		// fails here too, trying to read a file as a directory).
		return fmt.Errorf("s3 list %s: %w", t, permanentError{errors.New("config is not a namespace")})
	}
	// minio-go asks callers to cancel the context when they stop
	// iterating early (here: when fn fails), so nothing is left running.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	noOwner := false
	prefix := b.join(string(t) + "/")
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, minio.ListObjectsOptions{
		Prefix:     prefix,
		Recursive:  true,
		FetchOwner: &noOwner,
	}) {
		if obj.Err != nil {
			return fmt.Errorf("s3 list %s: %w", t, obj.Err)
		}
		rel := strings.TrimPrefix(obj.Key, prefix)
		name := rel[strings.LastIndexByte(rel, '/')+1:]
		// Skip directory markers some tools create, and hidden names,
		// which the local backend skips too and key() never produces.
		if name == "" || strings.HasPrefix(name, ".") {
			continue
		}
		if err := fn(name, obj.Size); err != nil {
			return err
		}
	}
	// The iterator ends silently when the context is cancelled; a
	// cut-short listing must not look complete.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3 list %s: %w", t, err)
	}
	return nil
}

// Remove implements backend.Backend. S3 deletes of missing keys succeed,
// so the object is looked up first to report backend.ErrNotFound; an
// object removed by someone else between the two requests is reported as
// removed.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	key, err := b.key(h)
	if err != nil {
		return fmt.Errorf("s3 remove %s: %w", h, err)
	}
	if _, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{}); err != nil {
		return b.objectError("remove", h, err)
	}
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return b.objectError("remove", h, err)
	}
	return nil
}

// Close implements backend.Backend. The client holds only idle
// connections, which the HTTP transport closes by itself.
func (b *Backend) Close() error { return nil }
