package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/supervise/supervise/conf"
)

// convertFiles writes files (the first one named is the source) into a
// temporary directory and converts the source. It returns the result and
// the directory (written $DIR in want strings by the checks below).
func convertFiles(t *testing.T, format Format, source string, files map[string]string) (*Result, string, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := goldenOptions()
	opts.Format = format
	res, err := ConvertFile(filepath.Join(dir, source), opts)
	return res, dir, err
}

// convertOne converts one file of the given format, which must convert.
func convertOne(t *testing.T, format Format, source, text string) (*Result, string) {
	t.Helper()
	res, dir, err := convertFiles(t, format, source, map[string]string{source: text})
	if err != nil {
		t.Fatalf("%s: %v", source, err)
	}
	checkValid(t, res.TOML)
	return res, dir
}

// hasLines checks that the output holds each line (its part before a
// trailing comment), $DIR standing for dir.
func hasLines(t *testing.T, res *Result, dir string, lines ...string) {
	t.Helper()
	got := map[string]bool{}
	for _, l := range strings.Split(string(res.TOML), "\n") {
		if i := strings.Index(l, "  # "); i >= 0 {
			l = l[:i]
		}
		got[strings.TrimSpace(l)] = true
	}
	for _, want := range lines {
		want = strings.ReplaceAll(want, "$DIR", dir)
		if !got[want] {
			t.Errorf("output lacks the line %q:\n%s", want, res.TOML)
		}
	}
}

// lacks checks that no line of the output starts with any of the prefixes
// (table headers and keys).
func lacks(t *testing.T, res *Result, prefixes ...string) {
	t.Helper()
	for _, l := range strings.Split(string(res.TOML), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				t.Errorf("output has %q:\n%s", l, res.TOML)
			}
		}
	}
}

// hasNotes checks that, in order, notes hold each text ($DIR for dir).
func hasNotes(t *testing.T, res *Result, dir string, texts ...string) {
	t.Helper()
	i := 0
	for _, n := range res.Notes {
		if i < len(texts) && strings.Contains(n.String(), strings.ReplaceAll(texts[i], "$DIR", dir)) {
			i++
		}
	}
	if i < len(texts) {
		var all []string
		for _, n := range res.Notes {
			all = append(all, n.String())
		}
		t.Errorf("no note holds %q (after the ones before it); notes:\n%s", texts[i], strings.Join(all, "\n"))
	}
}

// noNotes checks that there is no note.
func noNotes(t *testing.T, res *Result) {
	t.Helper()
	for _, n := range res.Notes {
		t.Errorf("unexpected note: %s", n)
	}
}

// futureKeys are keys of the features built beside this package (probes,
// replicas, log rotation: SPEC §11–14); conf refuses them until they are
// merged, and nothing else.
var futureKeys = []string{"readiness", "liveness", "replicas", "log_max_size", "log_max_files", "log_compress"}

// futureError reports whether e is conf refusing a key of a feature it
// does not know yet.
func futureError(e *conf.Error) bool {
	for _, k := range futureKeys {
		if strings.HasPrefix(e.Msg, fmt.Sprintf("unknown key %q", k)) {
			return true
		}
	}
	// The table form of depends_on (SPEC §12), before it is known.
	return e.Key == "depends_on" && strings.HasSuffix(e.Msg, "got table")
}

// checkValid checks that out is a configuration supervise accepts, but
// for keys of features conf does not know yet.
func checkValid(t testing.TB, out []byte) {
	t.Helper()
	_, err := conf.Parse("/srv/supervise.toml", out)
	if err == nil {
		return
	}
	var list conf.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("output refused: %v\n%s", err, out)
	}
	for _, e := range list {
		if !futureError(e) {
			t.Errorf("output refused: %v\n%s", e, out)
		}
	}
}

// errorIs checks that err is an *Error with exactly the text want ($DIR
// for dir).
func errorIs(t *testing.T, err error, dir, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an *Error %q", err, err, want)
	}
	if want = strings.ReplaceAll(want, "$DIR", dir); err.Error() != want {
		t.Errorf("error:\n got  %s\n want %s", err, want)
	}
}
