//go:build windows

package main

import "os"

// notifyReload: Windows has no SIGHUP; a service restart reloads.
func notifyReload() (<-chan os.Signal, func()) { return nil, func() {} }
