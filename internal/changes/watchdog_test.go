package changes

import (
	"strings"
	"testing"
	"time"
)

func TestWatchdog(t *testing.T) {
	loop := &activity{name: "the loop"}
	src := &activity{name: "the source"}
	acts := []*activity{loop, src}
	d := newWatchdog(10 * time.Second)
	t0 := time.Now()
	if r := d.check(t0, acts); r != "" {
		t.Fatalf("idle: %q", r)
	}
	// Idle for long is not a stall: waiting for events is not work.
	if r := d.check(t0.Add(time.Hour), acts); r != "" {
		t.Fatalf("idle for an hour: %q", r)
	}
	// Busy and stepping along is not a stall either.
	src.begin("walking a tree")
	now := time.Now()
	for i := 1; i <= 30; i++ {
		src.step()
		if r := d.check(now.Add(time.Duration(i)*time.Second), acts); r != "" {
			t.Fatalf("busy with progress, %ds: %q", i, r)
		}
	}
	// No step for the limit: stalled, saying who and on what.
	now = now.Add(30 * time.Second)
	if r := d.check(now.Add(9*time.Second), acts); r != "" {
		t.Fatalf("9s without a step: %q", r)
	}
	r := d.check(now.Add(11*time.Second), acts)
	if !strings.Contains(r, "the source stuck for 11s while walking a tree") {
		t.Fatalf("stalled: %q", r)
	}
	// Done: no longer stalled.
	src.end()
	if r := d.check(now.Add(12*time.Second), acts); r != "" {
		t.Fatalf("after end: %q", r)
	}
	// A piece of work that began recently counts from its start, however
	// long ago the last step was.
	loop.begin("writing the journal")
	if r := d.check(time.Now().Add(5*time.Second), acts); r != "" {
		t.Fatalf("5s into new work: %q", r)
	}
	if r := d.check(time.Now().Add(15*time.Second), acts); !strings.Contains(r, "the loop stuck") {
		t.Fatalf("loop stalled: %q", r)
	}
}
