package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/tidemark/tidemark/internal/backend"
)

// permanentError marks an error this package knows retrying cannot fix
// although it carries no S3 error code: a bad object name, a bucket that
// does not exist, an object shorter than the range asked for.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether retrying the operation that returned err
// is pointless. It is meant as retry.Options.Permanent.
//
// Permanent: missing objects and buckets, rejected credentials (403,
// AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch), other 4xx
// answers, invalid names, untrusted TLS certificates and a cancelled
// context.
//
// Transient: timeouts, connection resets and other network errors,
// 5xx answers, 408 and 429/SlowDown, and the 400 answers S3 gives for a
// request that was damaged or too slow in transit (RequestTimeout,
// BadDigest, IncompleteBody, XAmzContentSHA256Mismatch), because sending
// the request again is exactly what fixes those. ExpiredToken is also
// transient: the credential chain fetches a fresh token on the next try.
// Errors this function does not recognise are treated as transient; the
// retry layer bounds the attempts.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrExists) ||
		errors.Is(err, backend.ErrInvalidName) || errors.Is(err, context.Canceled) {
		return true
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return permanentResponse(er)
	}
	// A certificate the client does not trust stays untrusted.
	var (
		certErr      *tls.CertificateVerificationError
		unknownAuth  x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		certInvalid  x509.CertificateInvalidError
		recordHeader tls.RecordHeaderError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) ||
		errors.As(err, &hostnameErr) || errors.As(err, &certInvalid) ||
		errors.As(err, &recordHeader) {
		// RecordHeaderError is an HTTPS client talking to a plain HTTP
		// server: a configuration error, not a network hiccup.
		return true
	}
	return false
}

// permanentResponse classifies an S3 error answer.
func permanentResponse(er minio.ErrorResponse) bool {
	switch er.Code {
	case "RequestTimeout", "SlowDown", "SlowDownRead", "SlowDownWrite",
		"InternalError", "ServiceUnavailable", "OperationAborted",
		// Several of these come with status 400 but mean the request was
		// damaged or too slow in transit, or the token needs refreshing:
		// sending it again is the fix.
		"BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch", "ExpiredToken":
		return false
	}
	switch s := er.StatusCode; {
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests:
		return false
	case s >= 400 && s < 500:
		return true
	case s >= 500:
		return false
	}
	// No HTTP status: the error was made on the client side (bad
	// argument) or the status was lost; judge by the code alone.
	switch er.Code {
	case minio.AccessDenied, minio.NoSuchBucket, minio.NoSuchKey, "NotFound",
		minio.InvalidAccessKeyID, minio.SignatureDoesNotMatch, "InvalidToken",
		minio.InvalidBucketName, minio.XMinioInvalidObjectName, minio.InvalidArgument,
		minio.InvalidRange, minio.EntityTooLarge, minio.AllAccessDisabled,
		minio.InvalidRegion, minio.RequestTimeTooSkewed, "AccountProblem":
		return true
	}
	return false
}

// isNotFound reports an S3 answer meaning the object does not exist. A
// missing bucket is not a missing object: it must not look like one to
// callers that treat ErrNotFound as "already removed".
func isNotFound(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	switch er.Code {
	case minio.NoSuchKey, "NotFound":
		return true
	case minio.NoSuchBucket:
		return false
	}
	return er.StatusCode == http.StatusNotFound
}

// isAccessDenied reports an answer meaning the credentials were rejected
// or lack permission.
func isAccessDenied(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	switch er.Code {
	case minio.AccessDenied, minio.InvalidAccessKeyID, minio.SignatureDoesNotMatch,
		"InvalidToken", "ExpiredToken", minio.AllAccessDisabled,
		// versitygw's (404) answer to an unknown access key.
		"XAdminUserNotFound":
		return true
	}
	return er.StatusCode == http.StatusForbidden
}

// errCode returns the S3 error code of err, or "".
func errCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}
