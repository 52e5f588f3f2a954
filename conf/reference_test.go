package conf

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The README's key reference is written from the key declarations, between
// these two lines of README.md; TestReadmeReference fails when the README
// differs from what reference() writes, and rewrites it with -update.
const (
	referenceBegin = "<!-- BEGIN KEY REFERENCE: generated from conf/keys.go by `go generate ./conf`; do not edit -->"
	referenceEnd   = "<!-- END KEY REFERENCE -->"
)

// refTable is one table of the reference.
type refTable struct {
	header  string // "programs.NAME"
	intro   string
	keys    []refInfo
	program bool // program keys: show what a reload does on a change
}

// referenceTables lists the tables of the file with their keys, program
// subtables found from the program's declarations.
func referenceTables() []refTable {
	prog := programKeys.refs()
	tables := []refTable{
		{header: "supervisor", intro: "The supervisor's own settings.", keys: supervisorKeys.refs()},
		{header: "programs.NAME", program: true, keys: prog, intro: "One table per program; NAME " +
			"uses letters, digits, `_`, `.` and `-`. Any of these keys, subtables included, may also be set " +
			"in `[defaults]`, which every program inherits: a program's own value wins, and `environment` " +
			"merges variable by variable. *On reload* says what a reload that changes the key does to a " +
			"running program: *restart* it, or apply the value *in place*."},
	}
	for _, r := range prog {
		if r.header != "" {
			tables = append(tables, refTable{header: r.header, program: true, keys: r.keys,
				intro: "The keys of `" + r.name + "`, a subtable of each program (or of `[defaults]`): " + r.doc + "."})
		}
	}
	return append(tables, refTable{header: "teardown.NAME", keys: teardownKeys.refs(),
		intro: "Extra teardown steps, run as commands during shutdown; NAME must differ from every program's."},
		refTable{header: "hooks.NAME", keys: hookKeys.refs(),
			intro: "Commands run on events (see `supervise help events` for the kinds). At most one run of a hook " +
				"goes on at a time: the events that arrive meanwhile are coalesced into the next run, which gets the " +
				"latest of them with their count (`coalesced` in the JSON). A hook that fails or outlasts its " +
				"`timeout` is logged and affects no program. Hooks still run during the teardown, after the program " +
				"stops and before the remaining processes are terminated. A reload adds, removes and changes hooks."})
}

// reference writes the key reference in Markdown.
func reference() string {
	var b strings.Builder
	b.WriteString("Durations are Go duration strings (`\"250ms\"`, `\"1m30s\"`) or numbers of seconds; relative " +
		"paths are taken relative to the configuration file's directory.\n")
	for _, tab := range referenceTables() {
		fmt.Fprintf(&b, "\n#### `[%s]`\n\n%s\n\n", tab.header, tab.intro)
		if tab.program {
			b.WriteString("| Key | Type | Default | On reload | Description |\n|---|---|---|---|---|\n")
		} else {
			b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
		}
		for _, r := range tab.keys {
			fmt.Fprintf(&b, "| `%s` | %s | %s |", r.name, r.typ, r.def)
			if tab.program {
				if r.restart {
					b.WriteString(" restart |")
				} else {
					b.WriteString(" in place |")
				}
			}
			fmt.Fprintf(&b, " %s |\n", r.doc)
		}
	}
	return b.String()
}

// replaceReference returns readme with the text between the reference
// markers replaced by ref, or false when the markers are missing.
func replaceReference(readme, ref string) (string, bool) {
	i := strings.Index(readme, referenceBegin)
	j := strings.Index(readme, referenceEnd)
	if i < 0 || j < i {
		return "", false
	}
	return readme[:i+len(referenceBegin)] + "\n\n" + ref + "\n" + readme[j:], true
}

const readmePath = "../README.md"

// TestReadmeReference fails when the key reference in README.md is not
// what the declarations produce; -update rewrites it (go generate ./conf).
func TestReadmeReference(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	want, ok := replaceReference(readme, reference())
	if !ok {
		t.Fatalf("%s has no %q ... %q markers", readmePath, referenceBegin, referenceEnd)
	}
	conf := strings.Index(readme, "\n## Configuration\n")
	next := strings.Index(readme[conf+1:], "\n## ")
	if begin := strings.Index(readme, referenceBegin); conf < 0 || begin < conf || next >= 0 && begin > conf+1+next {
		t.Errorf("the key reference is not in the README's Configuration section")
	}
	if want == readme {
		return
	}
	if *update {
		if err := os.WriteFile(readmePath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's key reference differs from the declarations in conf/keys.go; run go generate ./conf")
}

// TestReadmeReferenceComplete checks that the reference names every key of
// every table, with the keys issue reports found missing from the README.
func TestReadmeReferenceComplete(t *testing.T) {
	ref := reference()
	for _, tab := range referenceTables() {
		if !strings.Contains(ref, "#### `["+tab.header+"]`") {
			t.Errorf("no heading for [%s]", tab.header)
		}
		for _, r := range tab.keys {
			if !strings.Contains(ref, "| `"+r.name+"` |") {
				t.Errorf("[%s] %s missing", tab.header, r.name)
			}
		}
	}
	for _, k := range []string{"clear_environment", "group", "autostart", "stderr", "log_burst", "ready_timeout"} {
		if !strings.Contains(ref, "| `"+k+"` |") {
			t.Errorf("%s is not documented", k)
		}
	}
}

// TestReadmeExample parses the annotated example of the README's
// Configuration section, so that it stays a valid file.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "\n## Configuration\n")
	if i < 0 {
		t.Fatal("no Configuration section")
	}
	s = s[i:]
	start := strings.Index(s, "```toml\n")
	if start < 0 {
		t.Fatal("no toml example in the Configuration section")
	}
	s = s[start+len("```toml\n"):]
	example := s[:strings.Index(s, "```")]
	if _, err := Parse("README.md", []byte(example)); err != nil {
		t.Errorf("the README's example is not valid:\n%v", err)
	}
}
