package repo

import (
	"os"
	"os/exec"
	"testing"
)

// TestProcessGone: this process runs; one that has exited and been waited
// for is gone.
func TestProcessGone(t *testing.T) {
	if processGone(os.Getpid()) {
		t.Error("this process counts as gone")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !processGone(cmd.Process.Pid) {
		t.Errorf("exited process %d counts as running", cmd.Process.Pid)
	}
}
