package control

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		in   string
		want Request
	}{
		{`{"command":"status"}`, Request{Command: CmdStatus}},
		{` {"command":"status","names":["db","web.1"]} ` + "\n", Request{Command: CmdStatus, Names: []string{"db", "web.1"}}},
		{`{"command":"start","names":["a_b-c"]}`, Request{Command: CmdStart, Names: []string{"a_b-c"}}},
		{`{"command":"stop","names":["a","b"]}`, Request{Command: CmdStop, Names: []string{"a", "b"}}},
		{`{"command":"restart","names":["a"]}`, Request{Command: CmdRestart, Names: []string{"a"}}},
		{`{"command":"reset","names":["a"]}`, Request{Command: CmdReset, Names: []string{"a"}}},
		{`{"command":"signal","names":["a"],"signal":"HUP"}`, Request{Command: CmdSignal, Names: []string{"a"}, Signal: "HUP"}},
		{`{"command":"signal","names":["a"],"signal":"SIGRTMIN+3"}`, Request{Command: CmdSignal, Names: []string{"a"}, Signal: "SIGRTMIN+3"}},
		{`{"command":"signal","names":["a"],"signal":"9"}`, Request{Command: CmdSignal, Names: []string{"a"}, Signal: "9"}},
		{`{"command":"reload"}`, Request{Command: CmdReload}},
		{`{"command":"shutdown","names":[]}`, Request{Command: CmdShutdown, Names: []string{}}},
	}
	for _, tt := range tests {
		got, err := ParseRequest([]byte(tt.in))
		if err != nil {
			t.Errorf("ParseRequest(%s): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRequest(%s) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseRequestInvalid(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `bad request: empty request`},
		{`   `, `bad request: empty request`},
		{`not json`, `bad request: invalid JSON: invalid character 'o' in literal null (expecting 'u')`},
		{`{"command":`, `bad request: invalid JSON: unexpected EOF`},
		{`[]`, `bad request: invalid JSON: cannot unmarshal array into Go value of type control.Request`},
		{`null`, `bad request: missing command (want one of status, start, stop, restart, reset, signal, reload, shutdown)`},
		{`{}`, `bad request: missing command (want one of status, start, stop, restart, reset, signal, reload, shutdown)`},
		{`{"command":"frob"}`, `bad request: unknown command "frob" (want one of status, start, stop, restart, reset, signal, reload, shutdown)`},
		{`{"command":"STATUS"}`, `bad request: unknown command "STATUS" (want one of status, start, stop, restart, reset, signal, reload, shutdown)`},
		{`{"command":"status","bogus":1}`, `bad request: invalid JSON: unknown field "bogus"`},
		{`{"command":"status"} {"command":"status"}`, `bad request: unexpected data after the request object`},
		{`{"command":"status"}}`, `bad request: unexpected data after the request object`},
		{`{"command":"status","names":"db"}`, `bad request: invalid JSON: cannot unmarshal string into Go struct field Request.names of type []string`},
		{`{"command":"start"}`, `bad request: start needs at least one program name`},
		{`{"command":"stop","names":[]}`, `bad request: stop needs at least one program name`},
		{`{"command":"restart"}`, `bad request: restart needs at least one program name`},
		{`{"command":"reset"}`, `bad request: reset needs at least one program name`},
		{`{"command":"signal","signal":"HUP"}`, `bad request: signal needs exactly one program name, got 0`},
		{`{"command":"signal","names":["a","b"],"signal":"HUP"}`, `bad request: signal needs exactly one program name, got 2`},
		{`{"command":"signal","names":["a"]}`, `bad request: signal needs a signal (a name such as HUP or a number)`},
		{`{"command":"signal","names":["a"],"signal":"H UP"}`, `bad request: invalid signal "H UP"`},
		{`{"command":"reload","names":["a"]}`, `bad request: reload takes no program names`},
		{`{"command":"shutdown","names":["a"]}`, `bad request: shutdown takes no program names`},
		{`{"command":"stop","names":["a"],"signal":"KILL"}`, `bad request: stop takes no signal`},
		{`{"command":"start","names":["ok",""]}`, `bad request: invalid program name "" (want letters, digits, '_', '.', '-')`},
		{`{"command":"start","names":["../x/y"]}`, `bad request: invalid program name "../x/y" (want letters, digits, '_', '.', '-')`},
		{`{"command":"status","names":["a b"]}`, `bad request: invalid program name "a b" (want letters, digits, '_', '.', '-')`},
	}
	for _, tt := range tests {
		_, err := ParseRequest([]byte(tt.in))
		if err == nil {
			t.Errorf("ParseRequest(%s): no error, want %q", tt.in, tt.want)
			continue
		}
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseRequest(%s): error %v does not wrap ErrBadRequest", tt.in, err)
		}
		if err.Error() != tt.want {
			t.Errorf("ParseRequest(%s):\n got %q\nwant %q", tt.in, err.Error(), tt.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "web", "Web_2", "a.b-c", "..", "0"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a/b", "é", "a\n", "a\x00"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

// FuzzParseRequest checks that ParseRequest never panics, that what it
// accepts satisfies the documented rules, and that an accepted request
// survives a JSON round trip unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"command":"status"}`,
		`{"command":"status","names":["db","web.1"]}`,
		`{"command":"signal","names":["a"],"signal":"HUP"}`,
		`{"command":"start","names":["a","b"]}`,
		`{"command":"reload"}`,
		`{"command":"shutdown","names":null}`,
		`{"command":"frob"}`,
		`{"command":"status","bogus":1}`,
		`{"command":"status"} x`,
		`{"command":"st\u0061tus"}`,
		`{"Command":"status","NAMES":["a"]}`,
		`not json`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			if !strings.HasPrefix(err.Error(), "bad request: ") {
				t.Fatalf("error %q lacks the bad request prefix", err)
			}
			return
		}
		if !slices.Contains(commands, req.Command) {
			t.Fatalf("accepted unknown command %q", req.Command)
		}
		for _, n := range req.Names {
			if !ValidName(n) {
				t.Fatalf("accepted name %q", n)
			}
		}
		switch req.Command {
		case CmdStart, CmdStop, CmdRestart, CmdReset:
			if len(req.Names) == 0 {
				t.Fatalf("accepted %s without names", req.Command)
			}
		case CmdSignal:
			if len(req.Names) != 1 || req.Signal == "" {
				t.Fatalf("accepted signal request %+v", req)
			}
		case CmdReload, CmdShutdown:
			if len(req.Names) != 0 {
				t.Fatalf("accepted %s with names", req.Command)
			}
		}
		if req.Command != CmdSignal && req.Signal != "" {
			t.Fatalf("accepted a signal with %s", req.Command)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request %s rejected: %v", enc, err)
		}
		if again.Command != req.Command || again.Signal != req.Signal || !slices.Equal(again.Names, req.Names) {
			t.Fatalf("round trip changed %+v into %+v", req, again)
		}
	})
}
