package supervisor

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
)

// This file is the supervisor's side of `stdout = "/path"` with
// log_max_size set (SPEC §14): the supervisor writes the file itself, the
// program's bytes as they came (no framing), and rotates it by size,
// keeping log_max_files old files FILE.1 (the newest) ... FILE.N,
// gzip-compressed after the rotation with log_compress, off the output
// path. `supervise reopen-logs` and SIGUSR1 reopen every file for an
// external logrotate. A file that cannot be opened or written (a full
// disk, a read-only directory) never blocks the program: its output is
// dropped, counted per program (status and metrics show it), and the
// error is logged at most once per fileErrorEvery.
//
// This rather than gopkg.in/natefinch/lumberjack.v2: copying a program's
// 200 MB of 100-byte lines from its pipe, read(2) of up to 1 MiB from a
// 256 KiB pipe and write(2), as here, measured faster and cheaper than
// lumberjack's Write (1.4-2.0 against 0.8-1.3 GB/s, 0.38-0.49 against
// 0.60-0.84 ms of CPU per MB); splice(2) from the pipe to the file was no
// better (the copy into the page cache dominates either way) and cannot
// rotate at a line boundary; and lumberjack names its backups by time,
// not FILE.1 ... FILE.N, and cannot reopen a file.

// fileErrorEvery spaces the log entries about a log file that cannot be
// written: the entries would otherwise flood the log.
const fileErrorEvery = 10 * time.Second

// copyBufSize is the most one Take reads from a pipe.
const copyBufSize = 1 << 20

// fileSet holds the log files the supervisor writes, by path: outputs of
// several programs (or stdout and stderr of one) naming the same file
// share it. Its methods are safe for concurrent use.
type fileSet struct {
	clk clock.Clock
	log *zap.Logger

	mu     sync.Mutex
	files  map[string]*logFile
	closed bool
	work   sync.WaitGroup // compressors and reopens under way

	// copyBuf is the buffer of every Take: procs calls the sinks of all
	// Copy outputs from one goroutine, one call at a time.
	copyBuf []byte
}

func newFileSet(clk clock.Clock, log *zap.Logger) *fileSet {
	return &fileSet{clk: clk, log: log, files: map[string]*logFile{}}
}

// logFile is one file the supervisor writes. Writes come from the output
// readers (Copy outputs through fileSink.Take, rate-limited Lines outputs
// through writeLine), reopens from the control socket or SIGUSR1; the
// lock orders them.
type logFile struct {
	set  *fileSet
	path string

	mu       sync.Mutex
	refs     int
	maxSize  int64 // 0: never rotate (not a regular file)
	maxFiles int
	compress bool
	f        *os.File // nil while the file cannot be opened
	size     int64
	midLine  bool      // the file does not end with a newline
	err      error     // why f is nil, or why the last write failed
	retryAt  time.Time // the next open attempt while f is nil
	noRotate time.Time // a rotation failed: do not try again before
	warnedAt time.Time // the last error entry
	pending  []string  // rotated, waiting for compression, oldest first
	zipping  bool      // a compressor runs
	lineBuf  []byte
	closed   bool // by fileSet.close: drop everything from then on
}

// acquire returns the file at path for one more output of the program cfg,
// opening it if it is not open yet. The program's rotation settings
// apply (the latest acquirer's, when programs share a file). An open
// failure is kept in the file, which drops what it is given until it can
// be opened.
func (fs *fileSet) acquire(path string, cfg *conf.Program) *logFile {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.files[path]
	if f == nil {
		f = &logFile{set: fs, path: path, closed: fs.closed}
		fs.files[path] = f
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs++
	f.maxSize, f.maxFiles, f.compress = cfg.LogMaxSize, cfg.LogMaxFiles, cfg.LogCompress
	if f.f == nil && !f.closed {
		f.err, f.retryAt = nil, time.Time{}
		f.openLocked()
	}
	return f
}

// release ends one output of f; the last closes its file. The entry stays
// in the set, idle, so that a program started again (a restart) finds its
// compressions under way rather than racing them with a second one.
func (fs *fileSet) release(f *logFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs--; f.refs <= 0 {
		f.refs = 0
		f.closeFileLocked()
	}
}

// reopen reopens every file (the answer to `supervise reopen-logs` and
// SIGUSR1): a file moved away by logrotate is created anew. It returns the
// paths reopened and the failures.
func (fs *fileSet) reopen() (paths []string, errs []error) {
	fs.mu.Lock()
	files := make([]*logFile, 0, len(fs.files))
	for _, f := range fs.files {
		files = append(files, f)
	}
	fs.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		if !f.closed && f.refs > 0 {
			f.closeFileLocked()
			f.err, f.retryAt = nil, time.Time{}
			f.openLocked()
			if f.err != nil {
				errs = append(errs, f.err)
			} else {
				paths = append(paths, f.path)
			}
		}
		f.mu.Unlock()
	}
	return paths, errs
}

// reopenAsync reopens every file on a goroutine of the set, logging the
// result: the event loop's answer to SIGUSR1.
func (fs *fileSet) reopenAsync(why string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return
	}
	fs.work.Go(func() {
		paths, errs := fs.reopen()
		fs.log.Info("reopened the log files", zap.String("why", why), zap.Strings("files", paths))
		for _, err := range errs {
			fs.log.Error("reopen log file", zap.Error(err))
		}
	})
}

// close closes every file and waits for the compressors and reopens under
// way. Outputs still running drop what they write from then on.
func (fs *fileSet) close() {
	fs.mu.Lock()
	fs.closed = true
	for _, f := range fs.files {
		f.mu.Lock()
		f.closeLocked()
		f.mu.Unlock()
	}
	fs.mu.Unlock()
	fs.work.Wait()
}

// openLocked opens the file for appending, without following it into a
// FIFO's wait for a reader; a file that is not regular (a device) is
// written but never rotated.
func (f *logFile) openLocked() {
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o644)
	if err == nil {
		var st os.FileInfo
		if st, err = file.Stat(); err == nil {
			f.f, f.size, f.err, f.midLine = file, st.Size(), nil, false
			if !st.Mode().IsRegular() {
				f.maxSize = 0
			}
			return
		}
		file.Close()
	}
	f.f, f.err = nil, fmt.Errorf("open log file: %w", err)
	f.retryAt = f.set.clk.Now().Add(fileErrorEvery)
}

func (f *logFile) closeFileLocked() {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}

func (f *logFile) closeLocked() {
	f.closeFileLocked()
	f.closed = true
}

// fileSink is the Sink of one Copy output writing f for program pl.
type fileSink struct {
	f  *logFile
	pl *progLog
}

// Take reads what the pipe holds (up to copyBufSize) and writes it.
func (s fileSink) Take(fd int) (int, error) {
	buf := s.f.set.copyBuf
	if buf == nil {
		buf = make([]byte, copyBufSize)
		s.f.set.copyBuf = buf
	}
	n, err := unix.Read(fd, buf)
	if n <= 0 {
		return 0, err
	}
	s.f.write(buf[:n], s.pl)
	return n, nil
}

// writeLine writes one line kept by log_rate (a partial piece without its
// newline).
func (f *logFile) writeLine(line []byte, partial bool, pl *progLog) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := append(f.lineBuf[:0], line...)
	if !partial {
		b = append(b, '\n')
	}
	f.writeLocked(b, pl)
	if cap(b) <= 64<<10 {
		f.lineBuf = b[:0]
	}
}

// write appends b, rotating first when it would grow the file past
// log_max_size: the part that fits, up to its last newline, goes to the
// old file, so that files end at line boundaries. A file whose last line
// is unfinished gets the rest of it first, up to procs.MaxLine past the
// limit, and a line longer than a whole file is cut. What cannot be
// written is dropped and counted for pl.
func (f *logFile) write(b []byte, pl *progLog) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeLocked(b, pl)
}

func (f *logFile) writeLocked(b []byte, pl *progLog) {
	if f.closed {
		return
	}
	if f.refs == 0 {
		return // released: a straggler of a run that ended
	}
	if f.f == nil && !f.set.clk.Now().Before(f.retryAt) {
		f.openLocked()
	}
	for len(b) > 0 {
		if f.f == nil {
			f.drop(len(b), pl)
			return
		}
		room := f.maxSize - f.size
		if f.maxSize <= 0 || int64(len(b)) <= room || f.set.clk.Now().Before(f.noRotate) {
			f.writeAll(b, pl)
			return
		}
		k := 0
		if room > 0 {
			k = bytes.LastIndexByte(b[:room], '\n') + 1
		}
		switch over := f.maxSize + procs.MaxLine - f.size; {
		case k == 0 && f.midLine && over > 0:
			// Finish the file's last line before rotating.
			k = int(min(int64(len(b)), over))
			if i := bytes.IndexByte(b[:k], '\n'); i >= 0 {
				k = i + 1
			}
		case k == 0 && f.size == 0:
			k = int(room) // one line longer than a whole file: cut it
		}
		f.writeAll(b[:k], pl)
		b = b[k:]
		if len(b) == 0 && f.midLine && f.size < f.maxSize+procs.MaxLine {
			return // the line goes on in the next write
		}
		if err := f.rotateLocked(); err != nil {
			f.noRotate = f.set.clk.Now().Add(fileErrorEvery)
			f.warn(err, 0)
		}
	}
}

// writeAll writes b, dropping what the file refuses.
func (f *logFile) writeAll(b []byte, pl *progLog) {
	if len(b) == 0 {
		return
	}
	n, err := f.f.Write(b)
	f.size += int64(n)
	if n > 0 {
		f.midLine = b[n-1] != '\n'
	}
	if err != nil {
		f.err = fmt.Errorf("write log file: %w", err)
		f.drop(len(b)-n, pl)
		return
	}
	if f.err != nil {
		f.err = nil
	}
	if pl != nil && pl.fileErr.Load() != nil {
		pl.fileErr.Store(nil)
	}
}

// drop counts n bytes of pl that f could not write and reports why, at
// most once per fileErrorEvery.
func (f *logFile) drop(n int, pl *progLog) {
	if pl != nil {
		pl.droppedBytes.Add(uint64(n))
		if msg := f.err.Error(); pl.fileErr.Load() == nil || *pl.fileErr.Load() != msg {
			pl.fileErr.Store(&msg)
		}
	}
	f.warn(f.err, n)
}

// warn logs err unless an entry about f was written less than
// fileErrorEvery ago.
func (f *logFile) warn(err error, dropped int) {
	now := f.set.clk.Now()
	if !f.warnedAt.IsZero() && now.Sub(f.warnedAt) < fileErrorEvery {
		return
	}
	f.warnedAt = now
	fields := []zap.Field{zap.String("file", f.path), zap.Error(err)}
	if dropped > 0 {
		fields = append(fields, zap.Int("dropped_bytes", dropped))
	}
	f.set.log.Error("log file: output dropped until it can be written (logged once per 10s)", fields...)
}

// rotateLocked moves the file to FILE.1 (shifting the older ones up to
// FILE.N, removing what falls off) and opens a new one. With log_compress
// the file is renamed aside and a compressor makes FILE.1.gz of it later,
// off the output path.
func (f *logFile) rotateLocked() error {
	f.closeFileLocked()
	defer func() {
		if f.f == nil {
			f.openLocked()
		}
	}()
	switch {
	case f.maxFiles == 0:
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	case f.compress:
		aside := f.path + ".rotated-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.Rename(f.path, aside); err != nil {
			return fmt.Errorf("rotate log file: %w", err)
		}
		f.pending = append(f.pending, aside)
		// Files beyond log_max_files would be removed once compressed:
		// remove them now when compression falls behind.
		for len(f.pending) > f.maxFiles {
			os.Remove(f.pending[0])
			f.pending = f.pending[1:]
		}
		if !f.zipping {
			f.zipping = true
			f.set.work.Go(f.compressPending)
		}
	default:
		if err := shiftBackups(f.path, f.maxFiles, ""); err != nil {
			return err
		}
		if err := os.Rename(f.path, f.path+".1"); err != nil {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	return nil
}

// shiftBackups makes room for a new FILE.1: FILE.N is removed and FILE.i
// becomes FILE.i+1 (with ext, such as ".gz", after the number).
func shiftBackups(path string, n int, ext string) error {
	name := func(i int) string { return path + "." + strconv.Itoa(i) + ext }
	if err := os.Remove(name(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate log file: %w", err)
	}
	for i := n - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	return nil
}

// compressPending compresses the rotated files in order, each into
// FILE.1.gz after shifting the older ones, until none is left.
func (f *logFile) compressPending() {
	for {
		f.mu.Lock()
		if len(f.pending) == 0 || f.maxFiles == 0 {
			f.zipping = false
			f.mu.Unlock()
			return
		}
		aside, n := f.pending[0], f.maxFiles
		f.mu.Unlock()
		err := shiftBackups(f.path, n, ".gz")
		if err == nil {
			err = gzipFile(aside, f.path+".1.gz")
		}
		f.mu.Lock()
		if len(f.pending) > 0 && f.pending[0] == aside {
			f.pending = f.pending[1:]
		}
		if err != nil {
			f.warn(err, 0)
		}
		f.mu.Unlock()
	}
}

// gzipFile writes src compressed to dst (through a temporary file renamed
// into place, so dst is never half written) and removes src.
func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // removed meanwhile: compression fell behind
		}
		return fmt.Errorf("compress rotated log file: %w", err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("compress rotated log file: %w", err)
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	_, err = io.Copy(zw, in)
	if err == nil {
		err = zw.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compress rotated log file: %w", err)
	}
	os.Remove(src)
	return nil
}
