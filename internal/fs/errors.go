package fs

import (
	"errors"
	iofs "io/fs"
	"os"
	"runtime"
	"strings"
)

// Errors to test with errors.Is; they match the system's own errors on
// every platform (ENOENT and ERROR_FILE_NOT_FOUND alike).
var (
	ErrNotExist   = iofs.ErrNotExist
	ErrExist      = iofs.ErrExist
	ErrPermission = iofs.ErrPermission
)

// ErrNotSupported is the cause of every error for an operation this
// platform does not support (yet). It also matches errors.ErrUnsupported.
var ErrNotSupported error = unsupportedError{}

type unsupportedError struct{}

func (unsupportedError) Error() string {
	return "not supported on this platform (" + runtime.GOOS + ")"
}

func (unsupportedError) Is(target error) bool { return target == errors.ErrUnsupported }

// notSupported reports that op cannot be done to path here.
func notSupported(op, path string) error {
	return &os.PathError{Op: op, Path: path, Err: ErrNotSupported}
}

func pathError(op, path string, err error) error {
	return &os.PathError{Op: op, Path: path, Err: err}
}

// ErrorText is err's message without the paths of the *os.PathError values
// in it ("lstat: permission denied" rather than "lstat /a/b: permission
// denied"), for reports that name the path already.
func ErrorText(err error) string {
	s := err.Error()
	var strip func(error)
	strip = func(e error) {
		if pe, ok := e.(*os.PathError); ok && pe.Path != "" {
			s = strings.Replace(s, pe.Op+" "+pe.Path+": ", pe.Op+": ", 1)
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if w := u.Unwrap(); w != nil {
				strip(w)
			}
		case interface{ Unwrap() []error }:
			for _, w := range u.Unwrap() {
				strip(w)
			}
		}
	}
	strip(err)
	return s
}
