package heartbeat

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/watch/trustedpath"
)

// Writer writes a heartbeat file: once per call to Beat, or at once and then
// every interval while Run runs. It is safe for concurrent use; concurrent
// beats are written one after the other.
type Writer struct {
	path     string
	interval time.Duration
	clk      clock.Clock
	pid      int
	hostname string
	metadata func() map[string]any
	after    func(State)
	onError  func(error)

	mu sync.Mutex // serializes writes
}

// Option configures a Writer.
type Option func(*Writer)

// WithClock makes the Writer take time stamps and schedule beats from c
// instead of the system clock.
func WithClock(c clock.Clock) Option { return func(w *Writer) { w.clk = c } }

// WithMetadata sets a function called at every beat for the metadata to
// write. It must be safe to call from the goroutine that beats.
func WithMetadata(f func() map[string]any) Option { return func(w *Writer) { w.metadata = f } }

// WithAfterBeat sets a hook called with the written state after every
// successful beat.
func WithAfterBeat(f func(State)) Option { return func(w *Writer) { w.after = f } }

// WithOnError sets a hook called with the error of every failed beat.
func WithOnError(f func(error)) Option { return func(w *Writer) { w.onError = f } }

// WithHostname sets the hostname written in each beat, instead of
// os.Hostname().
func WithHostname(name string) Option { return func(w *Writer) { w.hostname = name } }

// NewWriter returns a Writer for the file at path. Run beats every interval;
// interval must be positive for Run. The pid written is os.Getpid() and the
// hostname os.Hostname() unless WithHostname says otherwise.
func NewWriter(path string, interval time.Duration, opts ...Option) *Writer {
	w := &Writer{path: path, interval: interval, clk: clock.Real(), pid: os.Getpid()}
	w.hostname, _ = os.Hostname()
	for _, o := range opts {
		o(w)
	}
	return w
}

// Path returns the heartbeat file written by w.
func (w *Writer) Path() string { return w.path }

// Beat writes one beat now, atomically (see Write), creating the file's
// directory (mode 0755) if it is missing, without following another user's
// symbolic link (trustedpath.MkdirAll). On failure it calls the OnError
// hook and returns the error; on success it calls the AfterBeat hook. Hooks
// run in the caller's goroutine, after the write.
func (w *Writer) Beat() error {
	st := State{Timestamp: w.clk.Now().UTC(), PID: w.pid, Hostname: w.hostname}
	if w.metadata != nil {
		st.Metadata = w.metadata()
	}
	w.mu.Lock()
	err := Write(w.path, st)
	if err != nil && isNotExist(err) {
		if mkErr := trustedpath.MkdirAll(filepath.Dir(w.path), 0o755); mkErr == nil {
			err = Write(w.path, st)
		} else {
			err = fmt.Errorf("heartbeat: create directory: %w", mkErr)
		}
	}
	w.mu.Unlock()
	if err != nil {
		if w.onError != nil {
			w.onError(err)
		}
		return err
	}
	if w.after != nil {
		w.after(st)
	}
	return nil
}

// Run beats at once and then every interval until ctx is done, and returns
// ctx.Err(). A failed beat is reported to the OnError hook and does not stop
// Run. The next beat is scheduled before the current one is written, so a
// slow write does not shift the rhythm.
func (w *Writer) Run(ctx context.Context) error {
	if w.interval <= 0 {
		return fmt.Errorf("heartbeat: run %s: interval %v is not positive", w.path, w.interval)
	}
	tick := make(chan struct{}, 1)
	fire := func() {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := w.clk.AfterFunc(w.interval, fire)
		_ = w.Beat()
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-tick:
		}
	}
}
