package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzEventJSON decodes what a supervisor could send as an event: a
// client must print any of it as one line, and whatever decodes encodes.
func FuzzEventJSON(f *testing.F) {
	f.Add(`{"seq":1,"at":"2025-01-02T10:00:01Z","kind":"state","program":"web","from":"running","to":"backoff","exit_code":1}`)
	f.Add(`{"kind":"lost","lost":3}`)
	f.Add(`{"kind":"reload","diff":{"added":[{"name":"a"}],"changed":[{"name":"b","keys":["command"],"restart":true}],"hooks":{"added":[{"name":"h"}]}}}`)
	f.Add(`{"kind":"reload","diff":{"added":"a","hooks":7}}`)
	f.Add(`{"kind":"probe","reason":"a\nb\u0000","program":"\u001b[2J"}`)
	f.Add(`{"kind":"teardown","exit_code":-1,"signal":"SIGKILL"}`)
	f.Fuzz(func(t *testing.T, data string) {
		var ev Event
		if json.Unmarshal([]byte(data), &ev) != nil {
			return
		}
		if line := ev.Text(); strings.ContainsAny(line, "\n\r\x00\x1b") {
			t.Fatalf("Text of %s has a control character: %q", data, line)
		}
		if ev.Kind == KindNone {
			return
		}
		var back Event
		if err := json.Unmarshal(ev.JSON(), &back); err != nil || back.Kind != ev.Kind || back.Seq != ev.Seq {
			t.Fatalf("round trip of %s: %+v, %v", data, back, err)
		}
	})
}
