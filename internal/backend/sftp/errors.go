package sftp

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/tidemark/tidemark/internal/backend"
)

// permanentError marks a failure that trying again cannot fix: a bad
// location, a refused host key, failed authentication, an invalid name.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// errClosed is returned by calls on a closed Backend.
var errClosed = errors.New("backend is closed")

// IsPermanent reports whether err, returned by this package, will recur if
// the same call is retried: missing or existing objects, permission
// denied, unsupported operations, invalid names or locations, truncated
// objects, refused host keys and failed authentication.
//
// Connection loss, network errors and timeouts are not permanent, and
// neither is anything unrecognised, such as the server's generic
// SSH_FX_FAILURE (which may be a full disk that frees up): a bounded retry
// costs little there, while giving up on a transient fault fails a backup.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrExists) || errors.Is(err, backend.ErrInvalidName) ||
		errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, context.Canceled) {
		return true
	}
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true // a host that does not resolve will not start to
	}
	return false
}

// connLost reports whether err means the SSH connection or SFTP session
// is gone, so the call may succeed on a fresh connection.
func connLost(err error) bool {
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, sftp.ErrSSHFxNoConnection) ||
		errors.Is(err, io.EOF) || // the session's channel was closed under a request
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET)
}
