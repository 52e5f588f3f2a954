package supervisor

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
)

func newTestFiles(t *testing.T) (*fileSet, *clock.Fake, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	clk := clock.NewFake(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	fs := newFileSet(clk, zap.New(core))
	t.Cleanup(fs.close)
	return fs, clk, logs
}

func rotating(maxSize int64, maxFiles int, compress bool) *conf.Program {
	return &conf.Program{Name: "p", LogMaxSize: maxSize, LogMaxFiles: maxFiles, LogCompress: compress}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// numbered returns lines "000000\n" ... for i in [from, to).
func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%06d\n", i)
	}
	return b.String()
}

// TestLogFileRotates writes 1000 lines of 7 bytes through chunks that
// straddle the limit and lines: every file ends at a line boundary, past
// log_max_size by the end of a line at most; the newest is FILE.1, and
// FILE.N+1 never exists.
func TestLogFileRotates(t *testing.T) {
	fs, _, _ := newTestFiles(t)
	path := filepath.Join(t.TempDir(), "out.log")
	pl := &progLog{name: "p"}
	f := fs.acquire(path, rotating(1000, 3, false))
	all := numbered(0, 1000)
	for rest := all; len(rest) > 0; {
		n := min(333, len(rest)) // not a multiple of the line length
		f.write([]byte(rest[:n]), pl)
		rest = rest[n:]
	}
	var got []string
	for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
		s := readFile(t, name)
		if len(s) > 1000+6 || (name != path && len(s) < 1000-6) || !strings.HasSuffix(s, "\n") {
			t.Errorf("%s: %d bytes, ends %q", filepath.Base(name), len(s), s[max(len(s)-3, 0):])
		}
		got = append(got, s)
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Error("a fourth old file is kept")
	}
	// The files hold the end of the stream, in order, with no gap.
	joined := strings.Join(got, "")
	if !strings.HasSuffix(all, joined) || len(joined) < 3*994 || (len(all)-len(joined))%7 != 0 {
		t.Fatalf("the files do not hold the stream's end: %d bytes", len(joined))
	}
	if pl.droppedBytes.Load() != 0 {
		t.Fatalf("dropped %d bytes", pl.droppedBytes.Load())
	}
	// A line longer than a whole file is cut.
	f.write([]byte(strings.Repeat("x", 2500)+"\n"), pl)
	if s := readFile(t, path); len(s) > 1000 {
		t.Errorf("a long line made a file of %d bytes", len(s))
	}
}

func TestLogFileMaxFilesZero(t *testing.T) {
	fs, _, _ := newTestFiles(t)
	path := filepath.Join(t.TempDir(), "out.log")
	f := fs.acquire(path, rotating(100, 0, false))
	f.write([]byte(numbered(0, 30)), nil)
	if s := readFile(t, path); !strings.HasSuffix(numbered(0, 30), s) || len(s) > 100 {
		t.Errorf("file %q", s)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Errorf("old files kept with log_max_files = 0: %v", m)
	}
}

// TestLogFileCompresses checks FILE.1.gz ... FILE.N.gz, compressed off the
// write path, newest first.
func TestLogFileCompresses(t *testing.T) {
	fs, _, _ := newTestFiles(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	f := fs.acquire(path, rotating(700, 2, true))
	for i := 0; i < 500; i += 100 {
		f.write([]byte(numbered(i, i+100)), nil) // 700 bytes: one rotation each
	}
	fs.close() // waits for the compressors
	gunzip := func(name string) string {
		file, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		zr, err := gzip.NewReader(file)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := gunzip(path + ".1.gz"); got != numbered(300, 400) {
		t.Errorf("out.log.1.gz holds %.20q...", got)
	}
	if got := gunzip(path + ".2.gz"); got != numbered(200, 300) {
		t.Errorf("out.log.2.gz holds %.20q...", got)
	}
	if readFile(t, path) != numbered(400, 500) {
		t.Error("out.log does not hold the last lines")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 3 {
		t.Errorf("files left: %v", left)
	}
}

// TestLogFileReopen: after a move (logrotate's create mode), reopen makes
// a new file; the moved one keeps what came before.
func TestLogFileReopen(t *testing.T) {
	fs, _, _ := newTestFiles(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	f := fs.acquire(path, rotating(1<<20, 1, false))
	f.write([]byte("before\n"), nil)
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	f.write([]byte("still old\n"), nil)
	paths, errs := fs.reopen()
	if len(errs) != 0 || len(paths) != 1 || paths[0] != path {
		t.Fatalf("reopen: %v %v", paths, errs)
	}
	f.write([]byte("after\n"), nil)
	if got := readFile(t, path+".moved"); got != "before\nstill old\n" {
		t.Errorf("moved file %q", got)
	}
	if got := readFile(t, path); got != "after\n" {
		t.Errorf("new file %q", got)
	}
	fs.release(f)
	if paths, _ := fs.reopen(); len(paths) != 0 {
		t.Errorf("a released file was reopened: %v", paths)
	}
}

// TestLogFileUnwritable: output to a file that cannot be opened is dropped
// and counted, the error logged once per 10 s, and the file is opened when
// it becomes possible (retried at most once per 10 s).
func TestLogFileUnwritable(t *testing.T) {
	fs, clk, logs := newTestFiles(t)
	dir := filepath.Join(t.TempDir(), "missing")
	path := filepath.Join(dir, "out.log")
	pl := &progLog{name: "p"}
	f := fs.acquire(path, rotating(1<<20, 1, false))
	for i := 0; i < 5; i++ {
		f.write([]byte("lost line\n"), pl)
		clk.Advance(time.Second)
	}
	if got := pl.droppedBytes.Load(); got != 50 {
		t.Errorf("dropped %d bytes, want 50", got)
	}
	entries := logs.FilterMessageSnippet("output dropped").All()
	if len(entries) != 1 || entries[0].ContextMap()["file"] != path {
		t.Fatalf("%d error entries in 5 s: %v", len(entries), entries)
	}
	if e := pl.fileErr.Load(); e == nil || !strings.Contains(*e, "no such file or directory") {
		t.Errorf("file error %v", e)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.write([]byte("too early\n"), pl) // no new attempt before 10 s
	clk.Advance(6 * time.Second)
	f.write([]byte("kept\n"), pl)
	if got := readFile(t, path); got != "kept\n" {
		t.Errorf("file %q", got)
	}
	if pl.droppedBytes.Load() != 60 || pl.fileErr.Load() != nil {
		t.Errorf("dropped %d, error %v after recovery", pl.droppedBytes.Load(), pl.fileErr.Load())
	}
	clk.Advance(10 * time.Second)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if os.Geteuid() != 0 {
		// A full rotation fails on a read-only directory: logged, and the
		// output still goes to the file.
		f2 := fs.acquire(filepath.Join(dir, "out.log"), rotating(10, 1, false))
		f2.write([]byte(strings.Repeat("y", 30)+"\n"), pl)
		if n := len(logs.FilterMessageSnippet("output dropped").All()); n != 2 {
			t.Errorf("%d error entries after a failed rotation", n)
		}
	}
}

// TestLogFileSharedAndLines: stdout and stderr naming one file share it,
// and kept lines (log_rate) are written with their newlines.
func TestLogFileSharedAndLines(t *testing.T) {
	fs, _, _ := newTestFiles(t)
	path := filepath.Join(t.TempDir(), "out.log")
	a := fs.acquire(path, rotating(1<<20, 1, false))
	b := fs.acquire(path, rotating(1<<20, 1, false))
	if a != b {
		t.Fatal("one path, two files")
	}
	a.writeLine([]byte("first"), false, nil)
	b.writeLine([]byte("cut "), true, nil)
	b.writeLine([]byte("piece"), false, nil)
	fs.release(a)
	b.writeLine([]byte("still open"), false, nil)
	fs.release(b)
	b.writeLine([]byte("after close"), false, nil)
	if got := readFile(t, path); got != "first\ncut piece\nstill open\n" {
		t.Errorf("file %q", got)
	}
	// A program started again gets the same file back, open again.
	if c := fs.acquire(path, rotating(1<<20, 1, false)); c != a {
		t.Error("a new entry for a released file: its compressions would race")
	}
	a.writeLine([]byte("again"), false, nil)
	if got := readFile(t, path); !strings.HasSuffix(got, "still open\nagain\n") {
		t.Errorf("file %q", got)
	}
}

func BenchmarkLogFileWrite(b *testing.B) {
	fs := newFileSet(clock.Real(), zap.NewNop())
	defer fs.close()
	path := filepath.Join(b.TempDir(), "out.log")
	f := fs.acquire(path, rotating(50<<20, 2, false))
	chunk := bytes.Repeat([]byte(strings.Repeat("x", 99)+"\n"), 10000) // 1 MB
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		f.write(chunk, nil)
	}
}
