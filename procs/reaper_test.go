package procs

import (
	"syscall"
	"testing"
)

func TestHasChildren(t *testing.T) {
	r, _ := newTestReaper(t)
	if HasChildren() {
		t.Fatal("HasChildren before any spawn")
	}
	p, exit := spawn(t, r, Spec{Argv: []string{"/bin/sleep", "10"}})
	if !HasChildren() {
		t.Fatal("HasChildren false with a live child")
	}
	p.Signal(syscall.SIGKILL)
	waitExit(t, exit)
	if HasChildren() {
		t.Fatal("HasChildren after the child was reaped")
	}
}
