package control

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestScanSocket(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       string
		found      bool
	}{
		{"table", "[supervisor]\nsocket = \"/run/a.sock\"\n", "/run/a.sock", true},
		{"literal, spaces, comment", "[ supervisor ]  # the daemon\n  socket='/run/b.sock' # here\n", "/run/b.sock", true},
		{"relative", "[supervisor]\nsocket = \"run/c.sock\"\n", "/etc/sv/run/c.sock", true},
		{"dotted", "supervisor.socket = \"/d.sock\"\n[programs.a]\ncommand = \"x\"\n", "/d.sock", true},
		{"quoted keys", "[\"supervisor\"]\n'socket' = \"/e.sock\"\n", "/e.sock", true},
		{"inline table", "supervisor = { log_level = \"info\", socket = \"/f.sock\" }\n", "/f.sock", true},
		{"off", "[supervisor]\nsocket = \"off\"\n", "off", true},
		{"empty", "[supervisor]\nsocket = \"\"\n", "", true},
		{"absent", "[supervisor]\nlog_level = \"debug\"\n[programs.a]\nsocket = \"/no.sock\"\n", "", false},
		{"other table", "[programs.supervisor]\nsocket = \"/no.sock\"\n", "", false},
		{"dotted elsewhere", "[programs.a]\nsupervisor.socket = \"/no.sock\"\n", "", false},
		{"array of tables", "[[supervisor]]\nsocket = \"/no.sock\"\n", "", false},
		{"escapes", "[supervisor]\nsocket = \"/run/\\u0061.sock\"\n", "/run/a.sock", true},
		{"crlf", "[supervisor]\r\nsocket = \"/crlf.sock\"\r\n", "/crlf.sock", true},
		{"bom", "\uFEFF[supervisor]\nsocket = \"/bom.sock\"\n", "/bom.sock", true},
		// Broken elsewhere: before, inside and after the table.
		{"syntax error before", "[programs.web\ncommand = [\"/bin/x\"\n[supervisor]\nsocket = \"/g.sock\"\n", "/g.sock", true},
		{"garbage in the table", "[supervisor]\nlog_level = = \"x\"\n@@@\nsocket = \"/h.sock\"\nmetrics = \n", "/h.sock", true},
		{"unknown keys and types", "[supervisor]\nbogus = 5\nshutdown_timeout = [1, \"a\"]\nsocket = \"/i.sock\"\n[programs]\nweb = 3\n", "/i.sock", true},
		// Values that look like tables or keys are not.
		{"multi-line basic", "[teardown.x]\ncommand = \"\"\"\n[supervisor]\nsocket = \"/no.sock\"\n\"\"\"\n", "", false},
		{"multi-line literal", "x = '''\n[supervisor]\nsocket = '/no.sock'\n'''\n", "", false},
		{"multi-line array", "[programs.a]\ncommand = [\n  \"sh\",\n  \"[supervisor]\",\n  # socket = \"/no.sock\"\n]\n", "", false},
		{"nested arrays", "[programs.a]\nx = [\n[1],\n[2]\n]\nsocket = \"/no.sock\"\n", "", false},
		{"quotes in multi-line", "a = \"\"\"x\"\"\"\"\"\n[supervisor]\nsocket = \"/j.sock\"\n", "/j.sock", true},
		{"escaped quote", "a = \"x\\\"\\n[supervisor]\"\n[supervisor]\nsocket = \"/k.sock\"\n", "/k.sock", true},
		{"first wins", "[supervisor]\nsocket = \"/first.sock\"\n[supervisor]\nsocket = \"/second.sock\"\n", "/first.sock", true},
	} {
		got, found, err := ScanSocket("/etc/sv/supervise.toml", []byte(tt.text))
		if err != nil || got != tt.want || found != tt.found {
			t.Errorf("%s: ScanSocket = %q, %v, %v; want %q, %v", tt.name, got, found, err, tt.want, tt.found)
		}
	}
}

func TestScanSocketBadValue(t *testing.T) {
	for text, want := range map[string]string{
		"[supervisor]\nsocket = 5\n":                       "f.toml:2: supervisor: socket: expected a string, got an integer",
		"\n[supervisor]\n\nsocket = /run/x.sock\n":         "f.toml:4: supervisor: socket: invalid value:",
		"supervisor = { socket = [\"a\"] }\n":              "f.toml:1: supervisor: socket: expected a string, got an array",
		"supervisor = 3\n":                                 "f.toml:1: supervisor: socket: expected a table for supervisor, got an integer",
		"[supervisor]\nsocket.path = \"/x\"\n":             "f.toml:2: supervisor: socket: expected a string, got a table",
		"[supervisor.socket]\n":                            "f.toml:1: supervisor: socket: expected a string, got a table",
		"[supervisor]\nsocket = \"a\\u0000b\"\n":           "f.toml:2: supervisor: socket: contains a NUL byte",
		"x = \"\"\"\n\n\"\"\"\n[supervisor]\nsocket = 1.5": "f.toml:5: supervisor: socket: expected a string, got a float",
	} {
		_, found, err := ScanSocket("f.toml", []byte(text))
		if !found || err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: found %v, %v; want %q", text, found, err, want)
		}
	}
}

// FuzzScanSocket checks that the scanner never panics and that, on any
// input that is valid TOML, it finds exactly what a TOML decoder finds.
func FuzzScanSocket(f *testing.F) {
	for _, s := range []string{
		"[supervisor]\nsocket = \"/run/a.sock\"\n",
		"supervisor.socket = '/b'\n",
		"supervisor = { socket = \"/c\" }\n",
		"[programs.a]\ncommand = [\n\"[supervisor]\",\n]\n[supervisor]\nsocket = \"x\"\n",
		"x = \"\"\"\n[supervisor]\nsocket = \"no\"\n\"\"\"\n",
		"x = '''a''''\n",
		"[supervisor]\nsocket = 5\n",
		"[[supervisor]]\nsocket = \"x\"\n",
		"[supervisor]\nsocket = \"\\\n",
		"a = [[1], {b = \"]\"}]\n[supervisor]\nsocket = \"z\"",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, found, err := scanSocket(data)
		var doc map[string]any
		if _, derr := toml.Decode(string(data), &doc); derr != nil {
			return // not TOML: the scanner only has to survive it
		}
		sup, hasSup := doc["supervisor"].(map[string]any)
		v, present := sup["socket"]
		if _, isArray := doc["supervisor"].([]map[string]any); isArray || !hasSup && doc["supervisor"] != nil {
			return // [[supervisor]] or supervisor = 3: not a table the scanner reads
		}
		switch {
		case !present && found && err == nil:
			t.Fatalf("found %q where TOML has none", got)
		case present && !found:
			t.Fatalf("missed socket = %#v", v)
		}
		s, isString := v.(string)
		switch {
		case present && isString && !strings.ContainsRune(s, 0) && (err != nil || got != s):
			t.Fatalf("found %q, %v; TOML has %q", got, err, s)
		case present && !isString && err == nil:
			t.Fatalf("found %q without an error; TOML has %#v", got, v)
		}
	})
}

// A file of broken values that seem to span lines is scanned in linear
// time (each line rescanned to the end of the file would take minutes
// for this size), and the socket after them is still found.
func TestScanSocketLinear(t *testing.T) {
	for _, unit := range []string{"a = [\n", "a = {\n", "a = [[[[\n", "supervisor.socket = [\n", "a = \"\"\"x\n"} {
		data := []byte(strings.Repeat(unit, (256<<10)/len(unit)) + "\n[supervisor]\nsocket = \"/late.sock\"\n")
		start := time.Now()
		got, _, err := ScanSocket("f.toml", data)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q: %v for %d bytes", unit, d, len(data))
		}
		if unit == "a = \"\"\"x\n" || strings.HasPrefix(unit, "supervisor") {
			continue // the string swallows the rest; the socket is broken
		}
		if got != "/late.sock" || err != nil {
			t.Errorf("%q: %q, %v", unit, got, err)
		}
	}
}
