//go:build !unix

package changes

import "errors"

func syncDir(string) error { return nil }

func watcherLocked(string) (bool, error) {
	return false, errors.New("change journal: not supported on this system")
}
