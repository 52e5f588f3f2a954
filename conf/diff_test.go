package conf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": `[supervisor]
include = ["conf.d/*.toml"]
[programs.keep]
command = "keep"
[programs.web]
command = "web"
env_file = ["web.env"]
[programs.worker]
command = "worker"
stop_timeout = "5s"
[programs.old]
command = "old"
[teardown.flush]
command = "sync"
[teardown.drop]
command = "x"
`,
		"web.env":          "TOKEN=a\n",
		"conf.d/db.toml":   "[programs.db]\ncommand = \"db\"\n",
		"conf.d/gone.toml": "[programs.gone]\ncommand = \"gone\"\n",
	})
	main := filepath.Join(dir, "supervise.toml")
	old := mustLoad(t, main)
	if d := Compare(old, old); !d.Empty() || d.String() != "no change: 6 programs unchanged\n" {
		t.Errorf("Compare with itself: %+v\n%s", d, d)
	}

	os.WriteFile(main, []byte(`[supervisor]
include = ["conf.d/*.toml"]
log_level = "debug"

[programs.keep]
command = "keep"
[programs.web]
command = "web"
env_file = ["web.env"]
[programs.worker]
command = "worker"
stop_timeout = "6s"
[programs.new]
command = "new"
[teardown.flush]
command = "sync"
timeout = "3s"
[teardown.added]
command = "x"
`), 0o644)
	os.WriteFile(filepath.Join(dir, "web.env"), []byte("TOKEN=b\n"), 0o644)
	os.Remove(filepath.Join(dir, "conf.d/gone.toml"))
	os.WriteFile(filepath.Join(dir, "conf.d/api.toml"), []byte("\n[programs.api]\ncommand = \"api\"\n"), 0o644)
	d := Compare(old, mustLoad(t, main))
	rel := func(s string) string { return strings.ReplaceAll(s, dir+"/", "") }
	want := `added new (supervise.toml:13)
added api (conf.d/api.toml:2)
removed old (supervise.toml:11)
removed gone (conf.d/gone.toml:1)
changed web (supervise.toml:7): env_file; restarts
changed worker (supervise.toml:10): stop_timeout; in place
teardown added added (supervise.toml:18)
teardown removed drop (supervise.toml:15)
teardown changed flush (supervise.toml:15): timeout
supervisor changed: log_level
unchanged: 2 programs
`
	if got := rel(d.String()); got != want {
		t.Errorf("diff text\n%s\nwant\n%s", got, want)
	}
	if d.Empty() || !reflect.DeepEqual(d.Unchanged, []string{"keep", "db"}) {
		t.Errorf("unchanged %q", d.Unchanged)
	}

	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Added []struct {
			Name, Origin string
		}
		Changed []struct {
			Name    string
			Keys    []string
			Restart bool
		}
		Unchanged []string
		Teardown  struct{ Changed []struct{ Keys []string } }
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Added) != 2 || back.Added[1].Name != "api" || !strings.HasSuffix(back.Added[1].Origin, "conf.d/api.toml:2") ||
		len(back.Changed) != 2 || !back.Changed[0].Restart || back.Changed[1].Restart || back.Changed[1].Keys[0] != "stop_timeout" ||
		len(back.Teardown.Changed) != 1 {
		t.Errorf("JSON %s", js)
	}
	if strings.Contains(string(js), "TOKEN") || strings.Contains(d.String(), "TOKEN") {
		t.Errorf("the diff shows an env file's variable")
	}
	// Empty lists are arrays in JSON, never null.
	js, _ = json.Marshal(Compare(old, old))
	if strings.Contains(string(js), "null") {
		t.Errorf("JSON of an empty diff: %s", js)
	}
}
