package watchdog

import (
	"sync"
	"sync/atomic"
	"time"
)

// FileWatchdog is a Watchdog whose pings are the beats of a heartbeat file,
// delivered by a FileWatcher. Create it with FileWatcher.NewWatchdog.
//
// Stop only disarms the timer: beats keep being recorded (LastBeat) until
// Close, which also ends the file's watch. A stopped or expired FileWatchdog
// is re-armed with Start or Reset.
type FileWatchdog struct {
	wd       *Watchdog
	path     string
	onBeat   func(Beat)
	lastBeat atomic.Pointer[Beat]

	closeOnce sync.Once
	cancel    func()
}

// NewWatchdog returns a stopped FileWatchdog for the heartbeat file at path:
// once started, onTimeout is called when no beat arrives within the start
// grace, then within timeout of the previous beat. It watches the file at
// once (creating its directory if missing), so beats that arrive before
// Start are already recorded. Options are those of New; WithOnBeat adds a
// hook called on every beat. Without WithClock, the FileWatcher's clock is
// used. It panics, as New does, if timeout is not positive or onTimeout is
// nil.
func (fw *FileWatcher) NewWatchdog(path string, timeout time.Duration, onTimeout func(), opts ...Option) (*FileWatchdog, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.clk == nil {
		c.clk = fw.clk
	}
	fd := &FileWatchdog{wd: newWatchdog(timeout, onTimeout, c), onBeat: c.onBeat}
	cancel, err := fw.Watch(path, fd.beat)
	if err != nil {
		return nil, err
	}
	fd.cancel = cancel
	fd.path = path
	return fd, nil
}

func (fd *FileWatchdog) beat(b Beat) {
	fd.lastBeat.Store(&b)
	fd.wd.beatAt(b.At)
	if fd.onBeat != nil {
		fd.onBeat(b)
	}
}

// Path returns the heartbeat file, as given to NewWatchdog.
func (fd *FileWatchdog) Path() string { return fd.path }

// Start arms a stopped or expired FileWatchdog: the first beat is due within
// the start grace. Start on a running FileWatchdog does nothing.
func (fd *FileWatchdog) Start() { fd.wd.Start() }

// Stop disarms the FileWatchdog; beats are still recorded. It is idempotent,
// and after it returns no new onTimeout call begins.
func (fd *FileWatchdog) Stop() { fd.wd.Stop() }

// Reset re-arms the FileWatchdog as a fresh Start would.
func (fd *FileWatchdog) Reset() { fd.wd.Reset() }

// Ping counts as a beat that did not come from the file, such as an
// sd_notify WATCHDOG=1 message. It does not change LastBeat.
func (fd *FileWatchdog) Ping() { fd.wd.Ping() }

// Running reports whether the FileWatchdog is armed.
func (fd *FileWatchdog) Running() bool { return fd.wd.Running() }

// Deadline returns when the FileWatchdog fires unless a beat comes, and
// false when it is not running.
func (fd *FileWatchdog) Deadline() (time.Time, bool) { return fd.wd.Deadline() }

// SinceLastPing returns the time since the latest beat or Ping, or since
// the FileWatchdog was created when there has been none.
func (fd *FileWatchdog) SinceLastPing() time.Duration { return fd.wd.SinceLastPing() }

// Stats returns the counters; Pings counts beats and Ping calls.
func (fd *FileWatchdog) Stats() Stats { return fd.wd.Stats() }

// LastBeat returns the latest beat of the file, and false when none has been
// seen since NewWatchdog.
func (fd *FileWatchdog) LastBeat() (Beat, bool) {
	if b := fd.lastBeat.Load(); b != nil {
		return *b, true
	}
	return Beat{}, false
}

// Close stops the FileWatchdog and ends its watch of the file (the
// FileWatcher drops the directory's watch when no other file there is
// watched). It is idempotent; no beat hook begins after it returns.
func (fd *FileWatchdog) Close() {
	fd.closeOnce.Do(func() {
		fd.wd.Stop()
		fd.cancel()
	})
}
