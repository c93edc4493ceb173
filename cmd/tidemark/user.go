package main

import (
	"os"
	"os/user"
)

// setUserFromUID sets $USER, when unset, to the name of the process's
// user. New key files record $USER as who made them (key list shows it),
// and under cron, systemd units and containers it is often unset, which
// left that column empty; the uid's name is what it would have said.
func setUserFromUID() {
	if os.Getenv("USER") != "" {
		return
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		_ = os.Setenv("USER", u.Username)
	}
}
