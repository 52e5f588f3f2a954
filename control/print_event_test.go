package control

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

// `supervise events` prints one line per event, text or JSON, and
// nothing for a reply without one.
func TestPrintEvent(t *testing.T) {
	ev := &events.Event{Seq: 7, At: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Kind: events.BreakerOpen,
		Program: "web", From: "closed", To: "open", Failures: 5}
	cmd := Commands.Lookup(CmdEvents)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "2025-01-02T03:04:05.000Z #7 web breaker_open: closed -> open after 5 failures\n"},
		{[]string{"--json"}, string(ev.JSON()) + "\n"},
	} {
		inv, err := cmd.ParseArgs(c.args)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := cmd.Print(&b, inv, Response{OK: true}); err != nil || b.Len() != 0 {
			t.Fatalf("reply without an event printed %q, %v", b.String(), err)
		}
		if err := cmd.Print(&b, inv, Response{OK: true, Event: ev}); err != nil || b.String() != c.want {
			t.Fatalf("%v: printed %q, %v; want %q", c.args, b.String(), err, c.want)
		}
		if strings.Contains(c.want, "{") {
			var back events.Event
			if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Seq != 7 {
				t.Fatalf("JSON line does not decode: %v", err)
			}
		}
	}
	if !cmd.Stream {
		t.Fatal("events is not a streaming command")
	}
}

// SendEvent's bytes are those of Send with the event in a Response.
func TestEventReplyEncoding(t *testing.T) {
	code := 3
	ev := &events.Event{Seq: 9, At: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Kind: events.State, Program: "web",
		From: "running", To: "backoff", Reason: "exit \"3\"\n", ExitCode: &code}
	want, err := json.Marshal(Message{Version: ProtocolVersion, Type: MsgReply, Reply: &Response{OK: true, Event: ev}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(eventReply(ev)); got != string(want)+"\n" {
		t.Fatalf("eventReply:\n got %s\nwant %s", got, want)
	}
	m, err := DecodeMessage(bytes.TrimSuffix(eventReply(ev), []byte("\n")))
	if err != nil || m.Reply.Event.Seq != 9 || m.Reply.Event.Reason != ev.Reason {
		t.Fatalf("decoded %+v, %v", m, err)
	}
}
