package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"1h30m":                now.Add(-90 * time.Minute),
		"90":                   now.Add(-90 * time.Second),
		"0.5":                  now.Add(-500 * time.Millisecond),
		" 0 ":                  now,
		"2024-05-01T10:00:00Z": time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5m", "yesterday", "1e10", "0x10", "NaN", "2024-05-01"} {
		if got, err := ParseSince(in, now); err == nil {
			t.Errorf("ParseSince(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"10m", "90", "2024-05-01T10:00:00Z", "-1s", "1e300", "inf"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err == nil && got.IsZero() {
			t.Fatalf("ParseSince(%q) = the zero time without an error", s)
		}
	})
}

func TestAppendConsole(t *testing.T) {
	stamp := []byte("2024-05-01T12:00:00.000Z")
	for _, tt := range []struct {
		name  string
		width int
		sep   byte
		color string
		want  string
	}{
		{"web", 6, SepStdout, "", "2024-05-01T12:00:00.000Z web    | hello\n"},
		{"worker", 6, SepStderr, "", "2024-05-01T12:00:00.000Z worker ! hello\n"},
		{"toolongname", 3, SepMarker, "", "2024-05-01T12:00:00.000Z toolongname ~ hello\n"},
		{"web", 4, SepStderr, NameColor("web"), "2024-05-01T12:00:00.000Z " + NameColor("web") + "web\x1b[0m  \x1b[31m!\x1b[0m hello\n"},
	} {
		if got := string(AppendConsole(nil, stamp, tt.name, tt.width, tt.sep, tt.color, []byte("hello"))); got != tt.want {
			t.Errorf("AppendConsole(%s, %d, %c, %q) = %q, want %q", tt.name, tt.width, tt.sep, tt.color, got, tt.want)
		}
	}
	if NameColor("web") != NameColor("web") || NameColor("web") == "" {
		t.Error("a name's colour is not stable")
	}
	colours := map[string]bool{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		colours[NameColor(n)] = true
	}
	if len(colours) < 4 {
		t.Errorf("8 programs share %d colours", len(colours))
	}
}

func TestUseColor(t *testing.T) {
	var b bytes.Buffer
	if UseColor(&b) {
		t.Error("colour for a buffer")
	}
	t.Setenv("NO_COLOR", "1")
	if UseColor(nil) {
		t.Error("colour with NO_COLOR")
	}
}

func TestPrintLogs(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	r := Response{OK: true, Logs: &LogChunk{Width: 5, Lines: []LogLine{
		{TS: ts, Program: "web", Stream: "stdout", Line: "up"},
		{TS: ts, Program: "db", Stream: "stderr", Line: "cut", Partial: true},
		SkippedLine(ts, "web", 3),
	}}}
	cmd := Commands.Lookup(CmdLogs)
	inv, err := cmd.ParseArgs([]string{"--json"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printLogs(&out, inv, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines: %q", len(lines), out.String())
	}
	if lines[1] != `{"ts":"2024-05-01T12:00:00Z","program":"db","stream":"stderr","line":"cut","partial":true}` {
		t.Errorf("JSON line %s", lines[1])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &m); err != nil || m["skipped"] != 3.0 || m["line"] != "3 lines skipped (this reader fell behind)" {
		t.Errorf("marker %s", lines[2])
	}
	inv, _ = cmd.ParseArgs(nil)
	out.Reset()
	if err := printLogs(&out, inv, r); err != nil {
		t.Fatal(err)
	}
	local := ts.Local().Format(ConsoleTimeLayout)
	want := local + " web   | up\n" + local + " db    ! cut\n" + local + " web   ~ 3 lines skipped (this reader fell behind)\n"
	if out.String() != want {
		t.Errorf("console:\n%s\nwant\n%s", out.String(), want)
	}
}

// A handler that sends only while Queued is 0 never meets ErrSlowClient,
// however slowly its client reads, and learns from Taken when to go on.
func TestSenderPacing(t *testing.T) {
	sent := make(chan int, 1)
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			chunk := Response{Message: strings.Repeat("x", 1<<20)}
			n, skipped := 0, 0
			for n < 40 {
				if out.Queued() > 0 {
					skipped++
					select {
					case <-out.Taken():
					case <-ctx.Done():
						return nil
					}
					continue
				}
				if err := out.Send(chunk); err != nil {
					t.Errorf("Send %d: %v", n, err)
					return nil
				}
				n++
			}
			sent <- skipped
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"v":1,"command":"follow"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	// Read slowly: 40 MiB at about 100 MB/s.
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := c.Read(buf)
		total += n
		if err != nil || bytes.Contains(buf[:n], []byte(`"type":"done"`)) {
			break
		}
		time.Sleep(500 * time.Microsecond)
	}
	if total < 40<<20 {
		t.Fatalf("read %d bytes", total)
	}
	if waits := <-sent; waits == 0 {
		t.Error("the handler never waited for its client")
	}
	noReports(t, reported)
}

func TestStatusShowsOutputLosses(t *testing.T) {
	var b bytes.Buffer
	inv, _ := Commands.Lookup(CmdStatus).ParseArgs(nil)
	err := printStatus(&b, inv, Response{OK: true, Programs: []ProgramStatus{
		{Name: "quiet", State: "running", Output: &OutputStatus{}},
		{Name: "web", State: "running", Output: &OutputStatus{DroppedLines: 12, DroppedBytes: 1, FileError: "write log file: no space left on device"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasSuffix(out, "\nweb: output lost: 12 lines above log_rate, 1 byte not written to its log file (write log file: no space left on device)\n") || strings.Contains(out, "quiet: output") {
		t.Errorf("status:\n%s", out)
	}
}
