package conf

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The diff of a reload, and the running configuration after a scale,
// for programs with replicas.

func TestCompareReplicas(t *testing.T) {
	src := func(webCount, extra string) string {
		return `
[programs.web]
command = ["/bin/web", "80{replica}"]
` + webCount + extra + `
[programs.plain]
command = ["/bin/plain"]
`
	}
	old := mustParse(t, src("replicas = 2\n", ""))
	for _, tt := range []struct {
		name, new string
		text      string
		restart   bool
		count     *CountChange
	}{
		{"more", src("replicas = 4\n", ""), "changed web (/etc/sv/supervise.toml:2): replicas 2 -> 4 (starts web:2, web:3); in place", false,
			&CountChange{From: 2, To: 4}},
		{"fewer", src("replicas = 1\n", ""), "changed web (/etc/sv/supervise.toml:2): replicas 2 -> 1 (stops web:1); in place", false,
			&CountChange{From: 2, To: 1}},
		{"none", src("replicas = 0\n", ""), "replicas 2 -> 0 (stops web:0, web:1); in place", false, &CountChange{From: 2, To: 0}},
		{"and a restart", src("replicas = 5\n", "stop_timeout = \"1s\"\ndirectory = \"/srv\"\n"),
			"changed web (/etc/sv/supervise.toml:2): directory, replicas 2 -> 5 (starts web:2 to web:4), stop_timeout; restarts", true,
			&CountChange{From: 2, To: 5}},
		{"renamed", src("", ""), "changed web (/etc/sv/supervise.toml:2): replicas 2 -> 1, renamed; restarts", true,
			&CountChange{From: 2, To: 1, Renamed: true}},
		{"a template", `
[programs.web]
command = ["/bin/web", "90{replica}"]
replicas = 2
[programs.plain]
command = ["/bin/plain"]
`, "changed web (/etc/sv/supervise.toml:2): command; restarts", true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(old, mustParse(t, tt.new))
			if len(d.Changed) != 1 || d.Changed[0].Name != "web" || d.Changed[0].Restart != tt.restart {
				t.Fatalf("Changed = %+v", d.Changed)
			}
			c := d.Changed[0]
			if (c.Replicas == nil) != (tt.count == nil) || c.Replicas != nil && *c.Replicas != *tt.count {
				t.Errorf("Replicas = %+v, want %+v", c.Replicas, tt.count)
			}
			if tt.count != nil && !slices.Contains(c.Keys, "replicas") {
				t.Errorf("Keys = %q", c.Keys)
			}
			if !strings.Contains(d.String(), tt.text+"\n") || !strings.Contains(d.String(), "unchanged: 1 program\n") {
				t.Errorf("diff\n%s\nlacks\n%s", d, tt.text)
			}
		})
	}
	// Added and removed programs name their instances.
	d := Compare(mustParse(t, src("replicas = 3\n", "")), mustParse(t, `
[programs.api]
command = ["/bin/api"]
replicas = 12
`))
	if !strings.Contains(d.String(), "added api (/etc/sv/supervise.toml:2): api:0 to api:11\n") ||
		!strings.Contains(d.String(), "removed web (/etc/sv/supervise.toml:2): web:0 to web:2\n") ||
		!strings.Contains(d.String(), "removed plain (/etc/sv/supervise.toml:6)\n") {
		t.Errorf("diff\n%s", d)
	}
	js, _ := json.Marshal(d)
	if !strings.Contains(string(js), `"instances":["web:0","web:1","web:2"]`) || strings.Contains(string(js), "null") {
		t.Errorf("JSON %s", js)
	}
	// Instances are one program: its unchanged instances are not listed.
	if d := Compare(old, old); !d.Empty() || !slices.Equal(d.Unchanged, []string{"web", "plain"}) {
		t.Errorf("Compare(old, old) = %+v", d)
	}
}

func TestScaled(t *testing.T) {
	cfg := mustParse(t, `
[programs.a]
command = ["/bin/a"]
[programs.web]
command = ["/bin/web", "80{replica}"]
replicas = 2
[programs.z]
command = ["/bin/z"]
`)
	if err := cfg.AddCommand([]string{"/bin/main"}); err != nil {
		t.Fatal(err)
	}
	up, err := cfg.Scaled("web", 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "web:0", "web:1", "web:2", "web:3", "z", "main"}; !slices.Equal(up.Order, want) {
		t.Errorf("Order = %q, want %q", up.Order, want)
	}
	if p := up.Programs["web:3"]; p == nil || p.Command[1] != "803" || p.Replicas != 4 || up.Definitions["web"].Replicas != 4 {
		t.Errorf("web:3 = %+v", p)
	}
	// The running configuration is not changed, and the diff from the
	// scaled one back to it is the count.
	if cfg.Definitions["web"].Replicas != 2 || len(cfg.Programs) != 5 || cfg.Programs["web:2"] != nil {
		t.Errorf("Scaled changed its receiver: %q", cfg.Order)
	}
	d := Compare(up, cfg)
	if len(d.Changed) != 1 || *d.Changed[0].Replicas != (CountChange{From: 4, To: 2}) || d.Changed[0].Restart {
		t.Errorf("Compare(scaled, file) = %+v", d.Changed)
	}
	down, err := up.Scaled("web", 0)
	if err != nil || !slices.Equal(down.Order, []string{"a", "z", "main"}) || len(down.Programs) != 3 {
		t.Errorf("Scaled(0) = %v, %v", down, err)
	}
	for _, tt := range []struct {
		name string
		n    int
		want string
	}{
		{"a", 2, "programs.a: no replicas setting"},
		{"nope", 1, `no program named "nope"`},
		{"web", MaxReplicas + 1, "10001 replicas"},
	} {
		if _, err := cfg.Scaled(tt.name, tt.n); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Scaled(%q, %d) = %v, want %q", tt.name, tt.n, err, tt.want)
		}
	}
}
