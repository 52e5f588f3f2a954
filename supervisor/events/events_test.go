package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2025, 1, 2, 10, 0, 1, 123e6, time.UTC)

func code(n int) *int { return &n }

func TestText(t *testing.T) {
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{Event{Seq: 42, Kind: State, Program: "web", From: "running", To: "backoff", Reason: "exit code 1", PID: 4123, ExitCode: code(1)},
			"#42 web state: running -> backoff: exit code 1 (pid 4123, exit 1)"},
		{Event{Seq: 3, Kind: State, Program: "web", From: "backoff", To: "running", Reason: "spawned", PID: 9},
			"#3 web state: backoff -> running: spawned (pid 9)"},
		{Event{Seq: 4, Kind: State, Program: "w", From: "running", To: "backoff", Signal: "SIGKILL", ExitCode: code(-1)},
			"#4 w state: running -> backoff (signal SIGKILL)"},
		{Event{Seq: 43, Kind: BreakerOpen, Program: "web", From: "closed", To: "open", Failures: 5},
			"#43 web breaker_open: closed -> open after 5 failures"},
		{Event{Seq: 5, Kind: BreakerHalfOpen, Program: "web", From: "open", To: "half_open"},
			"#5 web breaker_half_open: open -> half_open"},
		{Event{Seq: 6, Kind: Ready, Program: "db", Source: "notify", Detail: "READY=1"}, "#6 db ready: notify READY=1"},
		{Event{Seq: 7, Kind: Failed, Program: "db", Reason: "exit code 2", Failures: 3}, "#7 db failed: exit code 2 3 consecutive"},
		{Event{Seq: 8, Kind: Watchdog, Program: "db", Source: "watchdog", Detail: "heartbeat overdue", Action: "restart"},
			"#8 db watchdog: heartbeat overdue action restart"},
		{Event{Seq: 9, Kind: Probe, Program: "db", Source: "liveness", Detail: "connection refused", Action: "stop"},
			"#9 db probe: liveness failed connection refused action stop"},
		{Event{Seq: 16, Kind: Probe, Program: "db", Source: "readiness", From: "passing", To: "failing", Detail: "HTTP 503"},
			"#16 db probe: readiness passing -> failing HTTP 503"},
		{Event{Seq: 10, Kind: Reload, Diff: Diff(`{"added":[{"name":"api","origin":"conf.d/api.toml:1"}],"removed":[],` +
			`"changed":[{"name":"web","keys":["command"],"restart":true}],"unchanged":["db"],` +
			`"teardown":{"added":[],"removed":[{"name":"flush"}],"changed":[],"unchanged":[]},` +
			`"hooks":{"added":[{"name":"page"}],"removed":[],"changed":[{"name":"audit","keys":["events"]}],"unchanged":[]},` +
			`"supervisor":["log_level"]}`), Reason: "SIGHUP"},
			"#10 supervisor reload: added api; changed web (command); teardown removed flush; hooks added page; " +
				"hooks changed audit (events); supervisor changed log_level (SIGHUP)"},
		{Event{Seq: 10, Kind: Reload, Diff: Diff(`{"added":[],"removed":[],"changed":[],"unchanged":["db"]}`), Reason: "SIGHUP"},
			"#10 supervisor reload: nothing changed (SIGHUP)"},
		{Event{Seq: 11, Kind: Reload, Error: "supervise.toml:3: bad"}, "#11 supervisor reload: refused: supervise.toml:3: bad"},
		{Event{Seq: 12, Kind: Teardown, Phase: "begin", Reason: "signal SIGTERM", ExitCode: code(0)},
			"#12 supervisor teardown: begin signal SIGTERM exit 0"},
		{Event{Seq: 13, Kind: TeardownStep, Program: "web", Step: "program web", Phase: "end", Error: "context deadline exceeded"},
			"#13 web teardown_step: program web end failed: context deadline exceeded"},
		{Event{Seq: 14, Kind: CriticalExit, Program: "main", Reason: "critical program main ended", ExitCode: code(4)},
			"#14 main critical_exit: critical program main ended exit 4"},
		{Event{Kind: Lost, Lost: 17}, "lost: 17 events missing here: the reader did not keep up"},
		{Event{Seq: 15, Kind: Failed, Program: "x", Reason: "line1\nline2", Coalesced: 2}, `#15 x failed: line1\nline2 [2 earlier coalesced]`},
	} {
		c.ev.At = at
		got := c.ev.Text()
		want := "2025-01-02T10:00:01.123Z " + c.want
		if got != want {
			t.Errorf("Text:\n got %q\nwant %q", got, want)
		}
	}
}

// The JSON form has the public field names, and decodes back.
func TestJSONRoundTrip(t *testing.T) {
	ev := Event{Seq: 1, At: at, Kind: BreakerOpen, Program: "web", From: "closed", To: "open", Failures: 5, ExitCode: code(0)}
	b := ev.JSON()
	for _, f := range []string{`"seq":1`, `"kind":"breaker_open"`, `"program":"web"`, `"at":"2025-01-02T10:00:01.123Z"`, `"failures":5`, `"exit_code":0`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("%s lacks %s", b, f)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != BreakerOpen || back.Seq != 1 || !back.At.Equal(at) || *back.ExitCode != 0 {
		t.Fatalf("decoded %+v", back)
	}
	// The supervisor's own events say program "".
	if s := string((&Event{Kind: Reload, At: at}).JSON()); !strings.Contains(s, `"program":""`) {
		t.Errorf("%s has no program", s)
	}
	if err := json.Unmarshal([]byte(`{"kind":"nope"}`), &back); err == nil {
		t.Error("an unknown kind decoded")
	}
	// A reload's diff is carried as the JSON it was given, and left out
	// when there is none.
	const diff = `{"added":[{"name":"api","instances":["api:0","api:1"]}],"hooks":{"removed":[{"name":"page"}]}}`
	s := string((&Event{Kind: Reload, At: at, Diff: Diff(diff)}).JSON())
	if !strings.Contains(s, `"diff":`+diff) {
		t.Errorf("%s lacks the diff", s)
	}
	var rl Event
	if err := json.Unmarshal([]byte(s), &rl); err != nil || string(rl.Diff) != diff || rl.Diff.String() != "added api; hooks removed page" {
		t.Errorf("decoded diff %s (%s), %v", rl.Diff, rl.Diff, err)
	}
	if s := string((&Event{Kind: Reload, At: at}).JSON()); strings.Contains(s, "diff") {
		t.Errorf("%s has a diff", s)
	}
}

func TestKinds(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds {
		name := k.String()
		if name == "" || seen[name] {
			t.Fatalf("kind %d: name %q empty or repeated", k, name)
		}
		seen[name] = true
		if got, err := ParseKind(name); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", name, got, err)
		}
	}
	if len(Kinds) != int(numKinds)-2 {
		t.Errorf("Kinds has %d kinds, want every kind but KindNone and Lost", len(Kinds))
	}
	for _, bad := range []string{"", "lost", "State", "breaker"} {
		if _, err := ParseKind(bad); err == nil {
			t.Errorf("ParseKind(%q) succeeded", bad)
		}
	}
}

func TestMatchProgram(t *testing.T) {
	for _, c := range []struct {
		names   []string
		program string
		want    bool
	}{
		{nil, "web", true},
		{nil, "", true},
		{[]string{"web"}, "web", true},
		{[]string{"web"}, "web:3", true},
		{[]string{"web:3"}, "web:3", true},
		{[]string{"web:3"}, "web:1", false},
		{[]string{"web"}, "webby", false},
		{[]string{"web"}, "we", false},
		{[]string{"web"}, "", false},
		{[]string{"db", "web"}, "web", true},
	} {
		if got := MatchProgram(c.names, c.program); got != c.want {
			t.Errorf("MatchProgram(%q, %q) = %v", c.names, c.program, got)
		}
	}
}

func publish(b *Bus, n int, program string) {
	for range n {
		b.Publish(&Event{Seq: b.Stamp(State), Kind: State, Program: program})
	}
}

// Numbers have no gap whether or not anyone reads; counts are per kind.
func TestStampGapless(t *testing.T) {
	var b Bus
	if b.Stamp(State) != 1 || b.Stamp(Ready) != 2 || b.Stamp(State) != 3 {
		t.Fatal("Stamp does not number 1, 2, 3")
	}
	if b.Count(State) != 2 || b.Count(Ready) != 1 || b.Count(Reload) != 0 {
		t.Fatalf("counts %d %d %d", b.Count(State), b.Count(Ready), b.Count(Reload))
	}
	if b.Active() {
		t.Fatal("a bus without subscribers is active")
	}
}

// A full buffer loses events, and the next batch says how many; the
// publisher never waits.
func TestSubscriberLosesWhenFull(t *testing.T) {
	var b Bus
	s := NewSubscriber(nil, 3)
	b.Subscribe(s)
	publish(&b, 5, "a")
	ctx := context.Background()
	batch, lost, err := s.Next(ctx, nil)
	if err != nil || len(batch) != 3 || lost != 2 || batch[0].Seq != 1 || batch[2].Seq != 3 {
		t.Fatalf("Next = %d events, lost %d, %v", len(batch), lost, err)
	}
	publish(&b, 1, "a")
	batch, lost, err = s.Next(ctx, batch)
	if err != nil || len(batch) != 1 || lost != 0 || batch[0].Seq != 6 {
		t.Fatalf("second Next = %v, lost %d, %v", batch, lost, err)
	}
	// A loss is of the events between a batch and the next one.
	publish(&b, 4, "a")
	batch, _, _ = s.Next(ctx, batch)
	if len(batch) != 3 {
		t.Fatalf("got %d", len(batch))
	}
	publish(&b, 3, "a")
	publish(&b, 2, "a")
	batch, lost, _ = s.Next(ctx, batch)
	if len(batch) != 3 || lost != 2 || batch[0].Seq != 11 {
		t.Fatalf("third batch: %d events from %d, lost %d", len(batch), batch[0].Seq, lost)
	}
}

func TestSubscriberFilterAndClose(t *testing.T) {
	var b Bus
	web := NewSubscriber([]string{"web"}, 10)
	all := NewSubscriber(nil, 10)
	b.Subscribe(web)
	b.Subscribe(all)
	publish(&b, 1, "web:0")
	publish(&b, 1, "db")
	publish(&b, 1, "")
	ctx := context.Background()
	if batch, _, _ := web.Next(ctx, nil); len(batch) != 1 || batch[0].Program != "web:0" {
		t.Fatalf("web got %v", batch)
	}
	if batch, _, _ := all.Next(ctx, nil); len(batch) != 3 {
		t.Fatalf("all got %d", len(batch))
	}
	web.Close()
	publish(&b, 1, "web")
	if n := b.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers after one left", n)
	}
	b.Close()
	// What was published before Close is still read, then the end.
	if batch, _, err := all.Next(ctx, nil); err != nil || len(batch) != 1 || batch[0].Program != "web" {
		t.Fatalf("after Close: %v, %v", batch, err)
	}
	if _, _, err := all.Next(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
	late := NewSubscriber(nil, 1)
	b.Subscribe(late)
	if _, _, err := late.Next(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("late subscriber: %v", err)
	}
}

func TestNextWaitsAndHonoursContext(t *testing.T) {
	var b Bus
	s := NewSubscriber(nil, 4)
	b.Subscribe(s)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []*Event, 1)
	go func() {
		batch, _, _ := s.Next(ctx, nil)
		got <- batch
	}()
	publish(&b, 1, "x")
	b.Flush()
	if batch := <-got; len(batch) != 1 {
		t.Fatalf("waiting Next got %v", batch)
	}
	cancel()
	if _, _, err := s.Next(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context = %v", err)
	}
}

// Publish to readers that keep their buffers full does not allocate.
func TestPublishDoesNotAllocatePerReader(t *testing.T) {
	var b Bus
	for range 10 {
		b.Subscribe(NewSubscriber(nil, 1))
	}
	ev := &Event{Kind: State, Program: "p"}
	b.Publish(ev)
	if n := testing.AllocsPerRun(100, func() { b.Publish(ev) }); n != 0 {
		t.Errorf("Publish allocates %v times", n)
	}
	var idle Bus
	if n := testing.AllocsPerRun(100, func() { idle.Stamp(State) }); n != 0 {
		t.Errorf("Stamp allocates %v times", n)
	}
}

// Readers are woken by Flush, once for a burst, or at once when their
// buffer is half full.
func TestFlushWakes(t *testing.T) {
	var b Bus
	s := NewSubscriber(nil, 10)
	b.Subscribe(s)
	publish(&b, 3, "x")
	if len(s.wake) != 0 {
		t.Fatal("woken before Flush")
	}
	b.Flush()
	if len(s.wake) != 1 {
		t.Fatal("not woken by Flush")
	}
	<-s.wake
	b.Flush()
	if len(s.wake) != 0 {
		t.Fatal("woken twice for the same events")
	}
	publish(&b, 2, "x") // 5 of 10
	if len(s.wake) != 1 {
		t.Fatal("not woken with a half full buffer")
	}
}
