package heartbeat

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hb.json")
	in := State{Timestamp: t0, PID: 42, Hostname: "h1", Metadata: map[string]any{"version": "1.0", "n": 3.0}}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("read %+v, want %+v", out, in)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the heartbeat file", len(entries))
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"timestamp":"2024-05-01T12:00:00.123456789Z"`) {
		t.Fatalf("timestamp not RFC 3339 UTC with fraction: %s", raw)
	}
}

func TestWriteFormatsWholeSecondsWithFraction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb")
	loc := time.FixedZone("X", 3600)
	if err := Write(path, State{Timestamp: time.Date(2024, 1, 2, 4, 5, 6, 0, loc), PID: 1}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	want := `{"timestamp":"2024-01-02T03:05:06.000000000Z","pid":1,"hostname":"","metadata":{}}` + "\n"
	if string(raw) != want {
		t.Fatalf("got %s\nwant %s", raw, want)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "missing", "hb"), State{Timestamp: t0}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("write into missing directory: %v, want fs.ErrNotExist", err)
	}
	if err := Write(filepath.Join(dir, "hb"), State{Timestamp: t0, Metadata: map[string]any{"f": func() {}}}); err == nil {
		t.Fatal("unencodable metadata accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("failed writes left %d files", len(entries))
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	put := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := put("big", `{"timestamp":"2024-05-01T12:00:00Z","hostname":"`+strings.Repeat("x", MaxSize)+`"}`)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	cases := []struct {
		name string
		path string
		want error
	}{
		{"missing", filepath.Join(dir, "nope"), fs.ErrNotExist},
		{"empty", put("empty", ""), ErrEmpty},
		{"blank", put("blank", " \n\t"), ErrEmpty},
		{"garbage", put("garbage", "hello"), ErrMalformed},
		{"truncated", put("trunc", `{"timestamp":"2024-05-01T12:00:00Z","pid":`), ErrMalformed},
		{"too large", big, ErrTooLarge},
		{"directory", sub, ErrNotRegular},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(c.path)
			if !errors.Is(err, c.want) {
				t.Fatalf("Read: %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.path) {
				t.Fatalf("error %q does not name the path", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ok := []struct {
		in   string
		want State
	}{
		{`{"timestamp":"2024-05-01T12:00:00.123456789Z","pid":7,"hostname":"a","metadata":{"k":"v"}}`,
			State{Timestamp: t0, PID: 7, Hostname: "a", Metadata: map[string]any{"k": "v"}}},
		{`{"timestamp":"2024-05-01T14:00:00+02:00"}`, State{Timestamp: t0.Truncate(time.Second)}},
		{` {"timestamp":"2024-05-01T12:00:00Z","metadata":null,"extra":[1,2]} ` + "\n", State{Timestamp: t0.Truncate(time.Second)}},
	}
	for _, c := range ok {
		got, err := Parse([]byte(c.in))
		if err != nil {
			t.Fatalf("Parse(%s): %v", c.in, err)
		}
		if !reflect.DeepEqual(got, c.want) || got.Timestamp.Location() != time.UTC {
			t.Fatalf("Parse(%s) = %+v, want %+v", c.in, got, c.want)
		}
	}
	bad := []struct{ in, why string }{
		{`[]`, "not a JSON object"},
		{`{}`, `missing "timestamp"`},
		{`{"timestamp":"yesterday"}`, "not RFC 3339"},
		{`{"timestamp":12}`, "timestamp"},
		{`{"timestamp":"2024-05-01T12:00:00Z","pid":-1}`, "negative pid"},
		{`{"timestamp":"2024-05-01T12:00:00Z","pid":1.5}`, "pid"},
		{`{"timestamp":"2024-05-01T12:00:00Z","hostname":3}`, "hostname"},
		{`{"timestamp":"2024-05-01T12:00:00Z","metadata":[1]}`, "not an object"},
		{`{"timestamp":"2024-05-01T12:00:00Z"} {}`, "data after"},
	}
	for _, c := range bad {
		_, err := Parse([]byte(c.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("Parse(%s) = %v, want ErrMalformed mentioning %q", c.in, err, c.why)
		}
	}
}

// TestConcurrentReadersNeverSeeTornFiles runs readers against a writer that
// rewrites the file as fast as it can.
func TestConcurrentReadersNeverSeeTornFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb")
	big := map[string]any{"pad": strings.Repeat("p", 16<<10)}
	if err := Write(path, State{Timestamp: t0, Metadata: big}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := Read(path); err != nil {
					bad.Add(1)
					t.Errorf("torn read: %v", err)
				}
				reads.Add(1)
			}
		}()
	}
	for i := 0; i < 30; i++ {
		if err := Write(path, State{Timestamp: t0.Add(time.Duration(i)), PID: i, Metadata: big}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || reads.Load() == 0 {
		t.Fatalf("%d bad reads of %d", bad.Load(), reads.Load())
	}
}

func TestIsAlive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb")
	if ok, _, err := IsAlive(path, time.Second, t0); ok || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: alive=%v err=%v", ok, err)
	}
	if err := Write(path, State{Timestamp: t0, PID: 9}); err != nil {
		t.Fatal(err)
	}
	ok, st, err := IsAlive(path, 30*time.Second, t0.Add(30*time.Second))
	if !ok || err != nil || st.PID != 9 {
		t.Fatalf("fresh at exactly max age: alive=%v st=%+v err=%v", ok, st, err)
	}
	ok, st, err = IsAlive(path, 30*time.Second, t0.Add(31*time.Second))
	var se *StaleError
	if ok || !errors.Is(err, ErrStale) || !errors.As(err, &se) || se.Age != 31*time.Second || st.PID != 9 {
		t.Fatalf("stale: alive=%v st=%+v err=%v", ok, st, err)
	}
	if !strings.Contains(err.Error(), "31s ago") {
		t.Fatalf("stale error %q does not give the age", err)
	}
	if ok, _, err := IsAlive(path, time.Second, t0.Add(-time.Hour)); !ok || err != nil {
		t.Fatalf("future timestamp: alive=%v err=%v", ok, err)
	}
}

func TestWriterBeat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "sup")
	path := filepath.Join(dir, "hb")
	clk := clock.NewFake(t0)
	var after []State
	w := NewWriter(path, time.Second, WithClock(clk), WithHostname("box"),
		WithMetadata(func() map[string]any { return map[string]any{"version": "v1"} }),
		WithAfterBeat(func(s State) { after = append(after, s) }),
		WithOnError(func(err error) { t.Errorf("unexpected error hook: %v", err) }))
	if err := w.Beat(); err != nil {
		t.Fatal(err)
	}
	st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := State{Timestamp: t0, PID: os.Getpid(), Hostname: "box", Metadata: map[string]any{"version": "v1"}}
	if !reflect.DeepEqual(st, want) || len(after) != 1 || !reflect.DeepEqual(after[0], want) {
		t.Fatalf("file %+v, hook %+v, want %+v", st, after, want)
	}
	if w.Path() != path {
		t.Fatalf("Path() = %q", w.Path())
	}
}

func TestWriterBeatError(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	var got []error
	w := NewWriter(filepath.Join(blocker, "hb"), time.Second,
		WithOnError(func(err error) { got = append(got, err) }),
		WithAfterBeat(func(State) { t.Error("after-beat hook called for a failed beat") }))
	err := w.Beat()
	if err == nil || len(got) != 1 || got[0] != err {
		t.Fatalf("Beat() = %v, hook got %v", err, got)
	}
}

func TestWriterRunWithFakeClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hb")
	clk := clock.NewFake(t0)
	beats := make(chan State, 10)
	w := NewWriter(path, 10*time.Second, WithClock(clk), WithAfterBeat(func(s State) { beats <- s }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	if s := <-beats; !s.Timestamp.Equal(t0) {
		t.Fatalf("first beat at %v, want at once (%v)", s.Timestamp, t0)
	}
	for i := 1; i <= 3; i++ {
		clk.Advance(9 * time.Second)
		select {
		case s := <-beats:
			t.Fatalf("beat at %v before the interval passed", s.Timestamp)
		default:
		}
		clk.Advance(time.Second)
		s := <-beats
		if want := t0.Add(time.Duration(i) * 10 * time.Second); !s.Timestamp.Equal(want) {
			t.Fatalf("beat %d at %v, want %v", i, s.Timestamp, want)
		}
		if st, err := Read(path); err != nil || !st.Timestamp.Equal(s.Timestamp) {
			t.Fatalf("file holds %+v, %v", st, err)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers left pending after Run returned", n)
	}
}

func TestWriterRunRejectsBadInterval(t *testing.T) {
	if err := NewWriter("x", 0).Run(context.Background()); err == nil {
		t.Fatal("Run with zero interval returned nil")
	}
}

func TestStateJSON(t *testing.T) {
	var s State
	if err := json.Unmarshal([]byte(`{"timestamp":"2024-05-01T12:00:00.123456789Z","pid":3}`), &s); err != nil {
		t.Fatal(err)
	}
	if !s.Timestamp.Equal(t0) || s.PID != 3 {
		t.Fatalf("%+v", s)
	}
	if err := json.Unmarshal([]byte(`{"pid":3}`), &s); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Unmarshal without timestamp: %v", err)
	}
	if _, err := json.Marshal(State{Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"timestamp":"2024-05-01T12:00:00.123456789Z","pid":7,"hostname":"a","metadata":{"k":"v","n":[1,2,{"x":null}]}}`))
	f.Add([]byte(`{"timestamp":"2024-05-01T14:00:00+02:00"}`))
	f.Add([]byte(`{"timestamp":"2024-05-01T12:00:00Z","pid":-1}`))
	f.Add([]byte(`{"timestamp":"2024-05-01T12:00:00Z"} x`))
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrEmpty", err)
			}
			return
		}
		if st.PID < 0 || st.Timestamp.Location() != time.UTC {
			t.Fatalf("accepted invalid state %+v", st)
		}
		enc, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("cannot re-encode a parsed state %+v: %v", st, err)
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded state does not parse: %v\n%s", err, enc)
		}
		if !again.Timestamp.Equal(st.Timestamp) || again.PID != st.PID || again.Hostname != st.Hostname {
			t.Fatalf("round trip changed %+v into %+v", st, again)
		}
		if len(st.Metadata) > 0 && !reflect.DeepEqual(again.Metadata, st.Metadata) {
			t.Fatalf("round trip changed metadata %v into %v", st.Metadata, again.Metadata)
		}
	})
}
