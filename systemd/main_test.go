package systemd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a notifying child process: it waits
// for a line on stdin, then sends $SYSTEMD_TEST_STATE with Notify.
const helperEnv = "SYSTEMD_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "notify" {
		bufio.NewReader(os.Stdin).ReadString('\n')
		if err := Notify(os.Getenv("SYSTEMD_TEST_STATE")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds waits for real events (datagrams, processes).
const waitTimeout = 5 * time.Second

// collector gathers what a Listener delivers.
type collector struct {
	msgs chan Message
	errs chan error
}

func newCollector() *collector {
	return &collector{msgs: make(chan Message, 1024), errs: make(chan error, 1024)}
}

func (c *collector) onMessage(m Message) { c.msgs <- m }
func (c *collector) onError(err error)   { c.errs <- err }

func (c *collector) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("no message delivered")
		return Message{}
	}
}

func (c *collector) nextErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.errs:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("no error reported")
		return nil
	}
}

// noMore fails if anything was delivered that the test did not take.
func (c *collector) noMore(t *testing.T) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Errorf("unexpected message %q", m.Raw)
	case err := <-c.errs:
		t.Errorf("unexpected error %v", err)
	default:
	}
}

// listen starts a Listener on a fresh path, closed at the end of the test.
func listen(t *testing.T, accept func(int) bool) (*Listener, *collector) {
	t.Helper()
	c := newCollector()
	path := filepath.Join(t.TempDir(), "notify.sock")
	l, err := Listen(path, -1, -1, accept, c.onMessage, WithErrorHandler(c.onError))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l, c
}

func wantDrop(t *testing.T, err error, target error) *DropError {
	t.Helper()
	var de *DropError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DropError", err, err)
	}
	if !errors.Is(err, target) {
		t.Fatalf("error %v is not %v", err, target)
	}
	return de
}
