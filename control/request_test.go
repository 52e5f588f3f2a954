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
	sig := func(s string) map[string]string { return map[string]string{ParamSignal: s} }
	tests := []struct {
		in   string
		want Request
	}{
		{`{"v":1,"command":"status"}`, Request{Version: 1, Command: CmdStatus}},
		{` {"v":1,"command":"status","names":["db","web.1"]} ` + "\n", Request{Version: 1, Command: CmdStatus, Names: []string{"db", "web.1"}}},
		{`{"v":1,"command":"start","names":["a_b-c"]}`, Request{Version: 1, Command: CmdStart, Names: []string{"a_b-c"}}},
		{`{"v":1,"command":"stop","names":["a","b"]}`, Request{Version: 1, Command: CmdStop, Names: []string{"a", "b"}}},
		{`{"v":1,"command":"restart","names":["a"]}`, Request{Version: 1, Command: CmdRestart, Names: []string{"a"}}},
		{`{"v":1,"command":"reset","names":["a"]}`, Request{Version: 1, Command: CmdReset, Names: []string{"a"}}},
		{`{"v":1,"command":"signal","names":["a"],"params":{"signal":"HUP"}}`, Request{Version: 1, Command: CmdSignal, Names: []string{"a"}, Params: sig("HUP")}},
		{`{"v":1,"command":"signal","names":["a"],"params":{"signal":"SIGRTMIN+3"}}`, Request{Version: 1, Command: CmdSignal, Names: []string{"a"}, Params: sig("SIGRTMIN+3")}},
		{`{"v":1,"command":"signal","names":["a"],"params":{"signal":"9"}}`, Request{Version: 1, Command: CmdSignal, Names: []string{"a"}, Params: sig("9")}},
		{`{"v":1,"command":"reload"}`, Request{Version: 1, Command: CmdReload}},
		{`{"v":1,"command":"shutdown","names":[],"params":{}}`, Request{Version: 1, Command: CmdShutdown, Names: []string{}, Params: map[string]string{}}},
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
	const want = "(want one of status, start, stop, restart, reset, signal, scale, reload, shutdown, logs, reopen-logs, events)"
	tests := []struct{ in, want string }{
		{``, `bad request: empty request`},
		{`   `, `bad request: empty request`},
		{`not json`, `bad request: invalid JSON: invalid character 'o' in literal null (expecting 'u')`},
		{`{"command":`, `bad request: invalid JSON: unexpected EOF`},
		{`[]`, `bad request: invalid JSON: cannot unmarshal array into Go value of type control.Request`},
		{`null`, `bad request: protocol version 0, this supervisor speaks 1 (use the supervise binary of the running supervisor)`},
		{`{"command":"status"}`, `bad request: protocol version 0, this supervisor speaks 1 (use the supervise binary of the running supervisor)`},
		{`{"v":2,"command":"status"}`, `bad request: protocol version 2, this supervisor speaks 1 (use the supervise binary of the running supervisor)`},
		{`{"v":1}`, `bad request: missing command ` + want},
		{`{"v":1,"command":"frob"}`, `bad request: unknown command "frob" ` + want},
		{`{"v":1,"command":"STATUS"}`, `bad request: unknown command "STATUS" ` + want},
		{`{"v":1,"command":"run"}`, `bad request: run is a command of the command line, not of the supervisor ` + want},
		{`{"v":1,"command":"help","params":{"command":"status"}}`, `bad request: help is a command of the command line, not of the supervisor ` + want},
		{`{"v":1,"command":"status","bogus":1}`, `bad request: invalid JSON: unknown field "bogus"`},
		{`{"v":1,"command":"status"} {"command":"status"}`, `bad request: unexpected data after the request object`},
		{`{"v":1,"command":"status"}}`, `bad request: unexpected data after the request object`},
		{`{"v":1,"command":"status","names":"db"}`, `bad request: invalid JSON: cannot unmarshal string into Go struct field Request.names of type []string`},
		{`{"v":1,"command":"status","params":{"json":"true"}}`, `bad request: status takes no parameter "json"`},
		{`{"v":1,"command":"start"}`, `bad request: start needs at least one program name`},
		{`{"v":1,"command":"stop","names":[]}`, `bad request: stop needs at least one program name`},
		{`{"v":1,"command":"restart"}`, `bad request: restart needs at least one program name`},
		{`{"v":1,"command":"reset"}`, `bad request: reset needs at least one program name`},
		{`{"v":1,"command":"signal","params":{"signal":"HUP"}}`, `bad request: signal needs a program name`},
		{`{"v":1,"command":"signal","names":["a","b"],"params":{"signal":"HUP"}}`, `bad request: signal needs exactly one program name, got 2`},
		{`{"v":1,"command":"signal","names":["a"]}`, `bad request: signal needs a signal (SIGNAL)`},
		{`{"v":1,"command":"signal","names":["a"],"params":{"signal":"H UP"}}`, `bad request: signal: invalid signal "H UP"`},
		{`{"v":1,"command":"signal","names":["a"],"params":{"signal":""}}`, `bad request: signal: invalid signal ""`},
		{`{"v":1,"command":"reload","names":["a"]}`, `bad request: reload takes no program names`},
		{`{"v":1,"command":"shutdown","names":["a"]}`, `bad request: shutdown takes no program names`},
		{`{"v":1,"command":"stop","names":["a"],"params":{"signal":"KILL"}}`, `bad request: stop takes no parameter "signal"`},
		{`{"v":1,"command":"start","names":["ok",""]}`, `bad request: invalid program name "" (want letters, digits, '_', '.', '-', and :N for one instance)`},
		{`{"v":1,"command":"start","names":["../x/y"]}`, `bad request: invalid program name "../x/y" (want letters, digits, '_', '.', '-', and :N for one instance)`},
		{`{"v":1,"command":"status","names":["a b"]}`, `bad request: invalid program name "a b" (want letters, digits, '_', '.', '-', and :N for one instance)`},
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

// A registry's own commands, remote flags and argument kinds are what
// its ParseRequest accepts.
func TestParseRequestCustomRegistry(t *testing.T) {
	reg, err := NewRegistry(
		&Command{Name: "scale", Summary: "s", Args: []Arg{{Name: "NAME", Kind: KindProgram}, {Name: "N", Kind: KindCount}}},
		&Command{Name: "logs", Summary: "l", Stream: true,
			Args:  []Arg{{Name: "NAME", Kind: KindProgram, Optional: true, Repeat: true}},
			Flags: []Flag{{Name: "lines", Short: "n", Value: "N", Kind: KindCount, Remote: true}, {Name: "follow", Short: "f", Kind: KindBool, Remote: true}, {Name: "json", Kind: KindBool}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"v":1,"command":"scale","names":["web"],"params":{"n":"3"}}`:                   "",
		`{"v":1,"command":"scale","names":["web"],"params":{"n":"-3"}}`:                  `bad request: n: invalid number "-3" (want 0 to 1000000000)`,
		`{"v":1,"command":"scale","names":["web"],"params":{"n":"03"}}`:                  `bad request: n: invalid number "03" (want 0 to 1000000000)`,
		`{"v":1,"command":"scale","names":["web"]}`:                                      `bad request: scale needs a number (N)`,
		`{"v":1,"command":"logs","params":{"lines":"10","follow":"true"}}`:               "",
		`{"v":1,"command":"logs","params":{"follow":"yes"}}`:                             `bad request: follow: invalid boolean "yes" (want true or false)`,
		`{"v":1,"command":"logs","params":{"json":"true"}}`:                              `bad request: logs takes no parameter "json"`,
		`{"v":1,"command":"status"}`:                                                     `bad request: unknown command "status" (want one of scale, logs)`,
		`{"v":1,"command":"logs","names":["a","b","c"],"params":{"lines":"1000000000"}}`: "",
	} {
		_, err := reg.ParseRequest([]byte(in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("ParseRequest(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "web", "Web_2", "a.b-c", "..", "0", "web:0", "web:12", "a.b:999999999"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a/b", "é", "a\n", "a\x00",
		"web:", ":0", "web:01", "web:-1", "web:1:2", "web:x", "web:1234567890", "a b:1"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

// FuzzParseRequest checks that ParseRequest never panics, that what it
// accepts satisfies the registry's rules, and that an accepted request
// survives a JSON round trip unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"command":"status"}`,
		`{"v":1,"command":"status","names":["db","web.1"]}`,
		`{"v":1,"command":"signal","names":["a"],"params":{"signal":"HUP"}}`,
		`{"v":1,"command":"start","names":["a","b"]}`,
		`{"v":1,"command":"scale","names":["web"],"params":{"n":"3"}}`,
		`{"v":1,"command":"stop","names":["web:0","web:01"]}`,
		`{"v":1,"command":"reload"}`,
		`{"v":1,"command":"shutdown","names":null,"params":null}`,
		`{"v":1,"command":"frob"}`,
		`{"v":1,"command":"run"}`,
		`{"v":1,"command":"status","bogus":1}`,
		`{"v":1,"command":"status","params":{"x":"y"}}`,
		`{"v":1,"command":"status"} x`,
		`{"v":1,"command":"st\u0061tus"}`,
		`{"V":1,"Command":"status","NAMES":["a"]}`,
		`{"command":"status"}`,
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
		if req.Version != ProtocolVersion {
			t.Fatalf("accepted version %d", req.Version)
		}
		c := Commands.Lookup(req.Command)
		if c == nil || c.Local || !slices.Contains(Commands.Names(true), req.Command) {
			t.Fatalf("accepted command %q", req.Command)
		}
		for _, n := range req.Names {
			if !ValidName(n) {
				t.Fatalf("accepted name %q", n)
			}
		}
		switch req.Command {
		case CmdStart, CmdStop, CmdRestart, CmdReset:
			if len(req.Names) == 0 || len(req.Params) != 0 {
				t.Fatalf("accepted %+v", req)
			}
		case CmdSignal:
			if len(req.Names) != 1 || !validSignal(req.Param(ParamSignal)) || len(req.Params) != 1 {
				t.Fatalf("accepted signal request %+v", req)
			}
		case CmdScale:
			if len(req.Names) != 1 || KindCount.check(req.Param(ParamCount)) != nil || len(req.Params) != 1 {
				t.Fatalf("accepted scale request %+v", req)
			}
		case CmdReload, CmdShutdown, CmdStatus:
			if len(req.Params) != 0 || (req.Command != CmdStatus && len(req.Names) != 0) {
				t.Fatalf("accepted %+v", req)
			}
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request %s rejected: %v", enc, err)
		}
		if again.Command != req.Command || !slices.Equal(again.Names, req.Names) || len(again.Params) != len(req.Params) {
			t.Fatalf("round trip changed %+v into %+v", req, again)
		}
		for k, v := range req.Params {
			if again.Params[k] != v {
				t.Fatalf("round trip changed %+v into %+v", req, again)
			}
		}
	})
}
