package importer

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var update = flag.Bool("update", false, "rewrite the golden files of TestGolden")

// goldenEnv is the environment the golden conversions see.
var goldenEnv = map[string]string{"HOME": "/home/app", "PATH": "/usr/local/bin:/usr/bin:/bin"}

func goldenOptions() Options {
	return Options{
		LookupEnv: func(name string) (string, bool) { v, ok := goldenEnv[name]; return v, ok },
		Hostname:  func() (string, error) { return "build-host", nil },
	}
}

// goldenCases are the real-world-shaped inputs: the file of each, under
// testdata, and its expected output in testdata/NAME.golden.
var goldenCases = []struct{ name, file string }{
	{"supervisord", "supervisord/supervisord.conf"},
	{"supervisord-basic", "supervisord-basic/supervisord.conf"},
	{"procfile", "procfile/Procfile"},
	{"process-compose", "process-compose/process-compose.yaml"},
	{"process-compose-basic", "process-compose-basic/process-compose.yaml"},
}

// render is a conversion as the golden files hold it: the TOML, then the
// notes, with the absolute path of testdata written $TESTDATA.
func render(t *testing.T, res *Result) string {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(res.TOML)
	b.WriteString("\n--- notes (stderr)\n")
	for _, n := range res.Notes {
		b.WriteString(n.String() + "\n")
	}
	return strings.ReplaceAll(b.String(), abs, "$TESTDATA")
}

// TestGolden converts each input and compares the output and the notes
// whole with the golden file; a second conversion must give the same
// bytes.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			res, err := ConvertFile(path, goldenOptions())
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, res)
			golden := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s: output differs from %s (go test -run TestGolden -update to accept):\n%s", path, golden, lineDiff(string(want), got))
			}
			again, err := ConvertFile(path, goldenOptions())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.TOML, res.TOML) || render(t, again) != got {
				t.Errorf("%s: a second conversion differs", path)
			}
		})
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 12; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
