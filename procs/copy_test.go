package procs

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bufSink is a Sink that keeps everything in memory, reading with buffers
// of size n, and counts its calls.
type bufSink struct {
	mu    sync.Mutex
	n     int
	buf   bytes.Buffer
	takes int
	eof   bool
}

func (s *bufSink) Take(fd int) (int, error) {
	b := make([]byte, s.n)
	n, err := unix.Read(fd, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.takes++
	if n > 0 {
		s.buf.Write(b[:n])
	}
	if n == 0 && err == nil {
		s.eof = true
	}
	return n, err
}

func (s *bufSink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// TestCopyOutputBeforeExit checks that a Copy output gets every byte,
// unframed, before the exit is delivered with DrainOutput, beside a Lines
// output of the same process read by the other reader.
func TestCopyOutputBeforeExit(t *testing.T) {
	r, _ := newTestReaper(t)
	// 3 MB of varied bytes, several times the pipe, no trailing newline.
	script := `head -c 3000000 /dev/urandom | od -An -tx1 -v | tr -d ' \n' | head -c 3000000; printf 'last words' >&2`
	for i := 0; i < 3; i++ {
		sink := &bufSink{n: 1 << 20}
		var errLines lineLog
		p, ch := spawn(t, r, Spec{
			Argv:        []string{"sh", "-c", script + "; echo done >&2"},
			Stdout:      Output{Kind: Copy, Sink: sink},
			Stderr:      errLines.output(),
			DrainOutput: true,
		})
		e := waitExit(t, ch)
		if e.Code() != 0 {
			t.Fatalf("exit %s", e)
		}
		// No wait: with DrainOutput the exit comes after the output.
		got := sink.bytes()
		if len(got) != 3000000 || bytes.ContainsAny(got, " \n") {
			t.Fatalf("copied %d bytes", len(got))
		}
		errLines.mu.Lock()
		lines := strings.Join(errLines.lines, "|")
		errLines.mu.Unlock()
		if lines != "last wordsdone" {
			t.Fatalf("stderr lines %q", lines)
		}
		waitClosed(t, p.OutputDone(), "output")
	}
	if n := r.pipes.n.Load(); n != 0 {
		t.Fatalf("%d enlarged pipes still counted after their streams ended", n)
	}
}

// TestCopyOutputExact compares what a sink got with what the program
// wrote, byte for byte, read in 64 KiB pieces.
func TestCopyOutputExact(t *testing.T) {
	r, _ := newTestReaper(t)
	src := make([]byte, 5<<20)
	for i := range src {
		src[i] = byte(i*7 + i>>9)
	}
	file := t.TempDir() + "/src"
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	sink := &bufSink{n: 64 << 10}
	_, ch := spawn(t, r, Spec{
		Argv:        []string{"sh", "-c", "cat " + file},
		Stdout:      Output{Kind: Copy, Sink: sink},
		Stderr:      Output{Kind: Null},
		DrainOutput: true,
	})
	waitExit(t, ch)
	if got := sink.bytes(); sha256.Sum256(got) != sha256.Sum256(src) {
		t.Fatalf("copied %d bytes, differing from the %d written", len(got), len(src))
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !sink.eof {
		t.Fatal("the sink never saw the end of the stream")
	}
}

// TestCopyPipeSize checks that a Copy pipe is enlarged while the budget
// allows, and a Lines pipe is not.
func TestCopyPipeSize(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 reads F_GETPIPE_SZ here")
	}
	r, _ := newTestReaper(t)
	// F_GETPIPE_SZ = 1032, on the child's own stdout and stderr.
	prog := `import fcntl,sys; print(fcntl.fcntl(1, 1032), fcntl.fcntl(2, 1032), file=sys.stderr)`
	var ll lineLog
	_, ch := spawn(t, r, Spec{
		Argv:        []string{"python3", "-c", prog},
		Env:         []string{testPath},
		Stdout:      Output{Kind: Copy, Sink: &bufSink{n: 4096}},
		Stderr:      ll.output(),
		DrainOutput: true,
	})
	waitExit(t, ch)
	got := ll.waitLines(t, 1)
	if want := "262144 65536"; got[0] != want {
		t.Fatalf("pipe sizes %q, want %q", got[0], want)
	}
}

func TestCopyOutputNeedsSink(t *testing.T) {
	r, _ := newTestReaper(t)
	_, err := r.Spawn(Spec{Argv: []string{"/bin/true"}, Stdout: Output{Kind: Copy}}, func(Exit) {})
	if err == nil || !strings.Contains(err.Error(), "without a sink") {
		t.Fatalf("err = %v", err)
	}
}

// TestOutputOnClose checks that OnClose runs once per output: after the
// last line or Take, and when Spawn fails.
func TestOutputOnClose(t *testing.T) {
	r, _ := newTestReaper(t)
	var mu sync.Mutex
	var events []string
	note := func(what string) func() {
		return func() { mu.Lock(); events = append(events, what); mu.Unlock() }
	}
	sink := &bufSink{n: 4096}
	lines := Output{Kind: Lines, OnLine: func(b []byte, _ bool) { note("line " + string(b))() }, OnClose: note("lines closed")}
	p, ch := spawn(t, r, Spec{
		Argv:        []string{"sh", "-c", "echo out; echo err >&2"},
		Stdout:      Output{Kind: Copy, Sink: sink, OnClose: note("copy closed")},
		Stderr:      lines,
		DrainOutput: true,
	})
	waitExit(t, ch)
	waitClosed(t, p.OutputDone(), "output")
	mu.Lock()
	got := strings.Join(events, ", ")
	mu.Unlock()
	if got != "line err, lines closed, copy closed" && got != "copy closed, line err, lines closed" && got != "line err, copy closed, lines closed" {
		t.Fatalf("events: %s", got)
	}
	if string(sink.bytes()) != "out\n" {
		t.Fatalf("copied %q", sink.bytes())
	}
	mu.Lock()
	events = nil
	mu.Unlock()
	if _, err := r.Spawn(Spec{Argv: []string{"/nonexistent/x"}, Stdout: Output{Kind: Copy, Sink: sink, OnClose: note("copy")}, Stderr: lines}, func(Exit) {}); err == nil {
		t.Fatal("spawned a missing binary")
	}
	if got := strings.Join(events, ", "); got != "copy, lines closed" {
		t.Fatalf("after a failed spawn: %s", got)
	}
	mu.Lock()
	events = nil
	mu.Unlock()
	if _, err := r.Spawn(Spec{Argv: []string{"no-such-command-here"}, Stdout: Output{Kind: Copy, Sink: sink, OnClose: note("copy")}}, func(Exit) {}); err == nil {
		t.Fatal("spawned a missing command")
	}
	if got := strings.Join(events, ", "); got != "copy" {
		t.Fatalf("after a failed lookup: %s", got)
	}
}

// TestOutputOnRoundEnd checks that every line delivered is followed, in
// its round, by OnRoundEnd, and that the last round ends before the exit
// is delivered (DrainOutput).
func TestOutputOnRoundEnd(t *testing.T) {
	r, _ := newTestReaper(t)
	var mu sync.Mutex
	pending, lines, rounds := 0, 0, 0
	out := Output{Kind: Lines,
		OnLine: func([]byte, bool) { mu.Lock(); pending++; lines++; mu.Unlock() },
		OnRoundEnd: func() {
			mu.Lock()
			defer mu.Unlock()
			if pending == 0 {
				t.Error("a round end without lines")
			}
			pending = 0
			rounds++
		},
	}
	_, ch := spawn(t, r, Spec{Argv: []string{"sh", "-c", "seq 1 20000; sleep 0.05; echo last"}, Stdout: out, Stderr: Output{Kind: Null}, DrainOutput: true})
	waitExit(t, ch)
	mu.Lock()
	defer mu.Unlock()
	if lines != 20001 || pending != 0 || rounds < 2 {
		t.Fatalf("%d lines, %d rounds, %d lines without a round end at the exit", lines, rounds, pending)
	}
}

// TestBusyLinesPipeGrows: a Lines pipe that stays full is enlarged, and
// its budget is given back when it closes.
func TestBusyLinesPipeGrows(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 reads F_GETPIPE_SZ here")
	}
	r, _ := newTestReaper(t)
	prog := `import fcntl,sys
line = b"x" * 99 + b"\n"
for i in range(40000): sys.stdout.buffer.write(line)
sys.stdout.flush()
print(fcntl.fcntl(1, 1032), file=sys.stderr)`
	n := 0
	slow := Output{Kind: Lines, OnLine: func([]byte, bool) {
		if n++; n%100 == 0 {
			time.Sleep(200 * time.Microsecond) // a slow reader: the pipe stays full
		}
	}}
	var ll lineLog
	_, ch := spawn(t, r, Spec{Argv: []string{"python3", "-c", prog}, Env: []string{testPath}, Stdout: slow, Stderr: ll.output(), DrainOutput: true})
	waitExit(t, ch)
	if got := ll.waitLines(t, 1); got[0] != "262144" {
		t.Fatalf("the busy pipe holds %s bytes, want 262144", got[0])
	}
	for deadline := time.Now().Add(waitLimit); r.pipes.n.Load() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the budget of the big pipe was not given back")
		}
	}
}
