package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
)

// startSupSocket is startSup with a control socket, whose path it returns.
func startSupSocket(t *testing.T, programs string, clk clock.Clock) (*harness, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "svl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	h := startSup(t, "[supervisor]\nwatch_config = false\nsocket = "+strconv.Quote(sock)+"\n"+programs, clk)
	return h, sock
}

// logs asks for `supervise logs` with params and returns the lines.
func logs(t *testing.T, ctx context.Context, sock string, names []string, params map[string]string) ([]control.LogLine, []string, error) {
	t.Helper()
	var lines []control.LogLine
	var notes []string
	err := control.Do(ctx, sock, control.Request{Command: control.CmdLogs, Names: names, Params: params}, func(r control.Response) error {
		if r.Logs == nil {
			return fmt.Errorf("a reply without lines: %+v", r)
		}
		lines = append(lines, r.Logs.Lines...)
		notes = append(notes, r.Logs.Notes...)
		return nil
	})
	return lines, notes, err
}

func lineTexts(ls []control.LogLine) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Program+":"+l.Stream+":"+l.Line)
	}
	return out
}

// TestLogsMergedByTime checks the kept lines of several programs: merged
// by time, stderr marked, -n taking the newest of the merge, --since, and
// an unknown name refused.
func TestLogsMergedByTime(t *testing.T) {
	h, sock := startSupSocket(t, `
[programs.a]
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo a$i; sleep 0.03; done; touch $DIR/a; exec sleep 1000"]
[programs.b]
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo b$i; sleep 0.03; done; echo b-err >&2; touch $DIR/b; exec sleep 1000"]
[programs.quiet]
command = ["/bin/sleep", "1000"]
stdout = "null"
`, nil)
	h.waitFor("output", func() bool {
		_, errA := os.Stat(filepath.Join(h.dir, "a"))
		_, errB := os.Stat(filepath.Join(h.dir, "b"))
		return errA == nil && errB == nil
	})
	ctx := context.Background()
	all, _, err := logs(t, ctx, sock, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 || !slices.IsSortedFunc(all, func(x, y control.LogLine) int { return x.TS.Compare(y.TS) }) {
		t.Fatalf("lines %q, want 7 in time order", lineTexts(all))
	}
	got := lineTexts(all)
	slices.Sort(got)
	if want := []string{"a:stdout:a1", "a:stdout:a2", "a:stdout:a3", "b:stderr:b-err", "b:stdout:b1", "b:stdout:b2", "b:stdout:b3"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	last3, _, err := logs(t, ctx, sock, nil, map[string]string{control.ParamLines: "3"})
	if err != nil || !slices.Equal(lineTexts(last3), lineTexts(all[4:])) {
		t.Fatalf("-n 3: %q, %v; want %q", lineTexts(last3), err, lineTexts(all[4:]))
	}
	onlyA, notes, err := logs(t, ctx, sock, []string{"a", "quiet"}, map[string]string{control.ParamLines: "2"})
	if err != nil || !slices.Equal(lineTexts(onlyA), []string{"a:stdout:a2", "a:stdout:a3"}) {
		t.Fatalf("a -n 2: %q, %v", lineTexts(onlyA), err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "quiet: stdout is discarded") {
		t.Errorf("notes %q", notes)
	}
	since := all[3].TS.Format(time.RFC3339Nano)
	recent, _, err := logs(t, ctx, sock, nil, map[string]string{control.ParamSince: since})
	if err != nil || len(recent) < 4 || recent[0].TS.Before(all[3].TS) {
		t.Fatalf("--since %s: %q, %v", since, lineTexts(recent), err)
	}
	if _, _, err := logs(t, ctx, sock, []string{"nope"}, nil); err == nil || !strings.Contains(err.Error(), `no program named "nope"`) {
		t.Fatalf("unknown program: %v", err)
	}
	if _, _, err := logs(t, ctx, sock, nil, map[string]string{control.ParamSince: "soon"}); err == nil || !strings.Contains(err.Error(), "since") {
		t.Fatalf("bad --since: %v", err)
	}
}

// TestLogsFollowUntilDeadline follows a program that writes a line every
// 10 ms: the follower gets every line written while it follows, in order,
// without gaps, until its deadline.
func TestLogsFollowUntilDeadline(t *testing.T) {
	_, sock := startSupSocket(t, `
[programs.tick]
command = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done"]
`, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	lines, _, err := logs(t, ctx, sock, nil, map[string]string{control.ParamFollow: "true", control.ParamLines: "0"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow ended with %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the follower ended %v after its start", d)
	}
	if len(lines) < 10 {
		t.Fatalf("followed %d lines in 700ms", len(lines))
	}
	first, _ := strconv.Atoi(lines[0].Line)
	for i, l := range lines {
		if n, err := strconv.Atoi(l.Line); err != nil || n != first+i {
			t.Fatalf("line %d is %q, want %d: a gap or a marker", i, l.Line, first+i)
		}
	}
}

// slowConn reads with a pause before each read while slow is set.
type slowConn struct {
	net.Conn
	slow atomic.Bool
}

func (c *slowConn) Read(p []byte) (int, error) {
	if c.slow.Load() {
		time.Sleep(20 * time.Millisecond)
		p = p[:min(len(p), 4096)]
	}
	return c.Conn.Read(p)
}

// TestLogsSlowFollowerLosesLines: a follower that reads slowly loses
// lines, each gap marked with the number skipped, while the program and
// the supervisor go on at full speed; every line is either received or
// counted as skipped.
func TestLogsSlowFollowerLosesLines(t *testing.T) {
	const n = 50000
	h, sock := startSupSocket(t, `
[programs.spew]
command = ["/bin/sh", "-c", "while [ ! -e $DIR/go ]; do sleep 0.01; done; seq 1 `+strconv.Itoa(n)+`; touch $DIR/done; exec sleep 1000"]
log_buffer = 100
`, nil)
	raw, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conn := &slowConn{Conn: raw}
	conn.slow.Store(true)
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, `{"v":1,"command":"logs","params":{"follow":"true"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond) // the follower is in place
		os.WriteFile(filepath.Join(h.dir, "go"), nil, 0o644)
	}()
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for {
			if _, err := os.Stat(filepath.Join(h.dir, "done")); err == nil {
				done <- time.Since(start)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	r := bufio.NewReaderSize(conn, 64<<10)
	var got, skipped uint64
	last := 0
	deadline := time.Now().Add(30 * time.Second)
	for last != n && time.Now().Before(deadline) {
		select {
		case d := <-done:
			t.Logf("the program wrote %d lines in %v while the follower read slowly", n, d)
			if d > 10*time.Second {
				t.Errorf("the program took %v: a slow follower held it up", d)
			}
			conn.slow.Store(false)
		default:
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (last line %d)", err, last)
		}
		m, err := control.DecodeMessage(line[:len(line)-1])
		if err != nil || m.Type != control.MsgReply {
			t.Fatalf("message %q: %v", line, err)
		}
		for _, l := range m.Reply.Logs.Lines {
			if l.Skipped > 0 {
				skipped += l.Skipped
				continue
			}
			v, err := strconv.Atoi(l.Line)
			if err != nil || v <= last {
				t.Fatalf("line %q after %d", l.Line, last)
			}
			last = v
			got++
		}
	}
	if last != n {
		t.Fatalf("the follower reached line %d of %d", last, n)
	}
	if skipped == 0 || got+skipped != n {
		t.Fatalf("received %d lines, %d marked skipped, of %d", got, skipped, n)
	}
	t.Logf("received %d lines, %d skipped", got, skipped)
}

// TestLogsFollowEndsWithSupervisor: at shutdown, the follower gets the
// programs' last lines, then the end of the stream.
func TestLogsFollowEndsWithSupervisor(t *testing.T) {
	h, sock := startSupSocket(t, `
[programs.polite]
command = ["/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; echo hello; while :; do sleep 0.01; done"]
`, nil)
	type result struct {
		lines []control.LogLine
		err   error
	}
	res := make(chan result, 1)
	go func() {
		lines, _, err := logs(t, context.Background(), sock, nil, map[string]string{control.ParamFollow: "true"})
		res <- result{lines, err}
	}()
	h.waitFor("hello", func() bool {
		pl := h.sup.out.logs.get("polite")
		_, next := pl.ring.bounds()
		return next > 0
	})
	time.Sleep(50 * time.Millisecond)
	h.sup.Shutdown("test", 0)
	select {
	case r := <-res:
		// (The shell may also say on stderr that its sleep was terminated.)
		out := slices.DeleteFunc(lineTexts(r.lines), func(s string) bool { return strings.Contains(s, ":stderr:") })
		if r.err != nil || !slices.Equal(out, []string{"polite:stdout:hello", "polite:stdout:bye"}) {
			t.Fatalf("follower got %q, %v", lineTexts(r.lines), r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not end with the supervisor")
	}
	h.exitCode()
}

// TestLogRateSummariesOncePerSecond: lines above log_rate are dropped from
// the log and the kept lines alike, and reported at most once per second
// (on the injected clock), as log entries and as markers in the kept
// lines; status counts them.
func TestLogRateSummariesOncePerSecond(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	h, sock := startSupSocket(t, `
[programs.burst]
command = ["/bin/sh", "-c", "seq 1 50; while [ ! -e $DIR/more ]; do sleep 0.01; done; seq 51 100; exec sleep 1000"]
log_rate = 1
log_burst = 5
`, clk)
	dropped := func() uint64 {
		if o := h.status("burst").Output; o != nil {
			return o.DroppedLines
		}
		return 0
	}
	reports := func() []uint64 {
		var out []uint64
		for _, e := range h.logs.FilterMessage("dropped lines above log_rate").All() {
			out = append(out, e.ContextMap()["dropped"].(uint64))
		}
		return out
	}
	h.waitFor("45 dropped", func() bool { return dropped() == 45 })
	if r := reports(); len(r) != 0 {
		t.Fatalf("reported %v before a second passed", r)
	}
	clk.Advance(time.Second)
	h.waitFor("the first report", func() bool { return len(reports()) == 1 })
	os.WriteFile(filepath.Join(h.dir, "more"), nil, 0o644)
	h.waitFor("94 dropped", func() bool { return dropped() == 94 }) // one token came back
	time.Sleep(20 * time.Millisecond)
	if r := reports(); len(r) != 1 {
		t.Fatalf("reports %v within the second", r)
	}
	clk.Advance(time.Second)
	h.waitFor("the second report", func() bool { return len(reports()) == 2 })
	if r := reports(); r[0] != 45 || r[1] != 49 {
		t.Fatalf("reports %v, want [45 49]", r)
	}
	lines, _, err := logs(t, context.Background(), sock, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	var markers []uint64
	for _, l := range lines {
		if l.Dropped > 0 {
			markers = append(markers, l.Dropped)
		} else {
			kept = append(kept, l.Line)
		}
	}
	if !slices.Equal(kept, []string{"1", "2", "3", "4", "5", "51"}) || !slices.Equal(markers, []uint64{45, 49}) {
		t.Fatalf("kept %q, markers %v", kept, markers)
	}
}

// testProgram is a program with its output to the log and log_buffer n.
func testProgram(name string, n int) *conf.Program {
	return &conf.Program{Name: name, LogBuffer: n, Stdout: conf.Output{Kind: conf.OutputLog}, Stderr: conf.Output{Kind: conf.OutputLog}}
}

// TestLogReaderMerge drives the merge on rings of known times: ties go to
// the earlier program, -n counts across programs, and a reader that fell
// behind gets a marker.
func TestLogReaderMerge(t *testing.T) {
	store := newLogStore()
	add := func(name string, times ...int64) {
		pl := store.prepare(testProgram(name, 4))
		for _, ts := range times {
			pl.ring.add(ts, 0, []byte(name+strconv.FormatInt(ts, 10)))
		}
	}
	add("a", 1, 3, 5)
	add("b", 2, 3, 6)
	r := newLogReader(store, nil)
	defer r.close()
	r.resolve()
	r.start(time.Time{}, 4)
	if got := lineTexts(r.collect()); !slices.Equal(got, []string{"a:stdout:a3", "b:stdout:b3", "a:stdout:a5", "b:stdout:b6"}) {
		t.Fatalf("-n 4: %q", got)
	}
	add("a", 7, 8, 9, 10, 11) // a keeps 4 lines: 8..11; the reader was at 7
	add("b", 7)
	if got := lineTexts(r.collect()); !slices.Equal(got, []string{"b:stdout:b7", "a::1 line skipped (this reader fell behind)", "a:stdout:a8", "a:stdout:a9", "a:stdout:a10", "a:stdout:a11"}) {
		t.Fatalf("after eviction: %q", got)
	}
	if r.width != 1 {
		t.Errorf("width %d", r.width)
	}
}

// TestLogsFollowSeesProgramsAdded: a follower of every program gets the
// lines of a program added by a reload while it follows, from its first.
func TestLogsFollowSeesProgramsAdded(t *testing.T) {
	h, sock := startSupSocket(t, `
[programs.old]
command = ["/bin/sleep", "1000"]
`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan control.LogLine, 100)
	done := make(chan error, 1)
	go func() {
		done <- control.Do(ctx, sock, control.Request{Command: control.CmdLogs, Params: map[string]string{control.ParamFollow: "true"}}, func(r control.Response) error {
			for _, l := range r.Logs.Lines {
				got <- l
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // following
	path := filepath.Join(h.dir, "supervise.toml")
	text, _ := os.ReadFile(path)
	text = append(text, "[programs.newcomer]\ncommand = [\"/bin/sh\", \"-c\", \"echo first; echo second; exec sleep 1000\"]\n"...)
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.ctl(control.CmdReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	for _, want := range []string{"first", "second"} {
		select {
		case l := <-got:
			if l.Program != "newcomer" || l.Line != want {
				t.Fatalf("got %+v, want newcomer's %q", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q from the program added", want)
		}
	}
	cancel()
	<-done
}

// TestLogReaderInstances: a program with replicas stands for every
// instance of it, by index, including one added while the reader
// follows; NAME:i for one; the notes are those of every instance.
func TestLogReaderInstances(t *testing.T) {
	store := newLogStore()
	add := func(name string) {
		p := testProgram(name, 4)
		p.Stderr = conf.Output{Kind: conf.OutputNull}
		store.prepare(p).ring.add(1, 0, []byte(name))
	}
	for _, n := range []string{"db", "web:10", "web:1", "web:0", "webby"} {
		add(n)
	}
	sources := func(r *logReader) []string {
		var out []string
		for _, s := range r.srcs {
			out = append(out, s.pl.name)
		}
		return out
	}
	all := newLogReader(store, []string{"web"})
	defer all.close()
	all.resolve()
	if got := sources(all); !slices.Equal(got, []string{"web:0", "web:1", "web:10"}) {
		t.Fatalf("web reads %q", got)
	}
	if notes := all.notes(); len(notes) != 3 || !strings.HasPrefix(notes[0], "web:0: stderr is discarded") {
		t.Errorf("notes %q", notes)
	}
	one := newLogReader(store, []string{"web:1", "db"})
	defer one.close()
	one.resolve()
	if got := sources(one); !slices.Equal(got, []string{"web:1", "db"}) {
		t.Fatalf("web:1 db reads %q", got)
	}
	add("web:2") // scaled up
	all.resolve()
	one.resolve()
	if got := sources(all); !slices.Equal(got, []string{"web:0", "web:1", "web:10", "web:2"}) {
		t.Fatalf("web after a scale reads %q", got)
	}
	if got := sources(one); len(got) != 2 {
		t.Fatalf("web:1 db after a scale reads %q", got)
	}
	if all.width != len("web:10") {
		t.Errorf("width %d", all.width)
	}
}
