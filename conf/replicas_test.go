package conf

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSplitInstance(t *testing.T) {
	for _, tt := range []struct {
		in   string
		base string
		i    int
		ok   bool
	}{
		{"web:0", "web", 0, true},
		{"web:12", "web", 12, true},
		{"a.b-c_d:7", "a.b-c_d", 7, true},
		{"web", "web", 0, false},
		{"web:", "web:", 0, false},
		{":1", ":1", 0, false},
		{"web:01", "web:01", 0, false},
		{"web:-1", "web:-1", 0, false},
		{"web:1x", "web:1x", 0, false},
		{"web:1:2", "web:1:2", 0, false},
		{"web:1234567890", "web:1234567890", 0, false},
	} {
		base, i, ok := SplitInstance(tt.in)
		if base != tt.base || i != tt.i || ok != tt.ok {
			t.Errorf("SplitInstance(%q) = %q, %d, %v; want %q, %d, %v", tt.in, base, i, ok, tt.base, tt.i, tt.ok)
		}
	}
	if got := InstanceName("web", 3); got != "web:3" {
		t.Errorf("InstanceName = %q", got)
	}
}

const replicatedSrc = `
[defaults]
environment = { ROLE = "{name}" }

[programs.db]
command = "exec db --id {replica} --name {name}"

[programs.web]
command = ["/usr/bin/web", "--port", "80{replica}", "--name={name}"]
replicas = 3
directory = "srv/{name}"
environment = { PORT = "80{replica}", PLAIN = "x" }
stdout = "/var/log/web-{replica}.log"
stderr = "log"
depends_on = ["db"]

[programs.web.watchdog]
heartbeat_file = "/run/web/{name}.hb"
timeout = "5s"

[programs.off]
command = ["/bin/off"]
replicas = 0

[programs.one]
command = ["/bin/one", "{replica}"]
replicas = 1
`

func TestReplicasExpand(t *testing.T) {
	cfg := mustParse(t, replicatedSrc)
	wantOrder := []string{"db", "web:0", "web:1", "web:2", "one:0"}
	if !slices.Equal(cfg.Order, wantOrder) {
		t.Fatalf("Order = %q, want %q", cfg.Order, wantOrder)
	}
	if got := slices.Sorted(maps.Keys(cfg.Programs)); !slices.Equal(got, slices.Sorted(slices.Values(wantOrder))) {
		t.Fatalf("Programs = %q", got)
	}
	if !slices.Equal(cfg.DefinitionOrder, []string{"db", "web", "off", "one"}) {
		t.Fatalf("DefinitionOrder = %q", cfg.DefinitionOrder)
	}

	// A program without replicas: one instance named like its table,
	// templates replaced with index 0.
	db := cfg.Programs["db"]
	if db.Base != "db" || db.Replica != 0 || db.Replicated || db.Replicas != 1 {
		t.Errorf("db identity = %q %d %v %d", db.Base, db.Replica, db.Replicated, db.Replicas)
	}
	if got := db.Command[2]; got != "exec db --id 0 --name db" {
		t.Errorf("db shell command = %q", got)
	}
	if db.Environment["ROLE"] != "db" {
		t.Errorf("db ROLE = %q", db.Environment["ROLE"])
	}

	def := cfg.Definitions["web"]
	if def.Command[2] != "80{replica}" || def.Watchdog.HeartbeatFile != "/run/web/{name}.hb" || !def.Replicated {
		t.Fatalf("the definition lost its templates: %+v", def)
	}
	for i, name := range []string{"web:0", "web:1", "web:2"} {
		p := cfg.Programs[name]
		if p.Name != name || p.Base != "web" || p.Replica != i || p.Replicas != 3 || p.Line != def.Line {
			t.Errorf("%s identity = %q %q %d %d line %d", name, p.Name, p.Base, p.Replica, p.Replicas, p.Line)
		}
		port := "80" + string(rune('0'+i))
		if want := []string{"/usr/bin/web", "--port", port, "--name=" + name}; !slices.Equal(p.Command, want) {
			t.Errorf("%s command = %q, want %q", name, p.Command, want)
		}
		if want := "/etc/sv/srv/" + name; p.Directory != want {
			t.Errorf("%s directory = %q, want %q", name, p.Directory, want)
		}
		if want := map[string]string{"PORT": port, "PLAIN": "x", "ROLE": name}; !maps.Equal(p.Environment, want) {
			t.Errorf("%s environment = %v, want %v", name, p.Environment, want)
		}
		if want := "/var/log/web-" + string(rune('0'+i)) + ".log"; p.Stdout.Kind != OutputFile || p.Stdout.Path != want {
			t.Errorf("%s stdout = %v, want %s", name, p.Stdout, want)
		}
		if want := "/run/web/" + name + ".hb"; p.Watchdog.HeartbeatFile != want {
			t.Errorf("%s heartbeat = %q, want %q", name, p.Watchdog.HeartbeatFile, want)
		}
		if !slices.Equal(p.DependsOn, []Dependency{{"db", DependsReady}}) {
			t.Errorf("%s depends_on = %q", name, p.DependsOn)
		}
	}
	// Instances of one table differ only in their templated settings.
	if d := cfg.Programs["web:0"].Diff(cfg.Programs["web:2"]); !slices.Equal(d, []string{"command", "directory", "environment", "stdout", "watchdog.heartbeat_file"}) {
		t.Errorf("web:0 vs web:2 Diff = %q", d)
	}
	// Instances share no memory with each other or the definition.
	w0, w1 := cfg.Programs["web:0"], cfg.Programs["web:1"]
	w0.Environment["PLAIN"] = "changed"
	w0.Command[0] = "/changed"
	w0.Watchdog.Timeout = 1
	w0.DependsOn[0].Name = "changed"
	w0.SuccessExitCodes[0] = 9
	if w1.Environment["PLAIN"] != "x" || w1.Command[0] != "/usr/bin/web" || w1.Watchdog.Timeout == 1 ||
		w1.DependsOn[0].Name != "db" || w1.SuccessExitCodes[0] != 0 {
		t.Errorf("instances share memory: %+v", w1)
	}
	if def.Environment["PLAIN"] != "x" || def.Command[0] != "/usr/bin/web" || def.Watchdog.Timeout == 1 {
		t.Errorf("an instance shares memory with its definition: %+v", def)
	}

	// replicas = 0: defined, nothing runs.
	if off := cfg.Definitions["off"]; off == nil || off.Replicas != 0 || !off.Replicated {
		t.Errorf("off definition = %+v", off)
	}
	// replicas = 1 written: the name is indexed, so scaling renames nothing.
	if one := cfg.Programs["one:0"]; one == nil || one.Command[1] != "0" || one.Name != "one:0" {
		t.Errorf("one:0 = %+v", one)
	}
}

func TestReplicasFromDefaults(t *testing.T) {
	cfg := mustParse(t, `
[defaults]
replicas = 2
[programs.a]
command = ["/bin/a", "{replica}"]
[programs.b]
command = ["/bin/b"]
replicas = 1
`)
	if !slices.Equal(cfg.Order, []string{"a:0", "a:1", "b:0"}) {
		t.Fatalf("Order = %q", cfg.Order)
	}
	// The command given after -- stays one process named main, and its
	// argv is taken literally.
	if err := cfg.AddCommand([]string{"/bin/echo", "{name}", "{replica}"}); err != nil {
		t.Fatal(err)
	}
	m := cfg.Programs[MainProgram]
	if m == nil || m.Replicated || m.Replicas != 1 || m.Base != MainProgram ||
		!slices.Equal(m.Command, []string{"/bin/echo", "{name}", "{replica}"}) {
		t.Fatalf("main = %+v", m)
	}
	if cfg.Order[len(cfg.Order)-1] != MainProgram || cfg.Definitions[MainProgram] == nil {
		t.Errorf("Order %q, definitions %v", cfg.Order, slices.Sorted(maps.Keys(cfg.Definitions)))
	}
}

func TestReplicasErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"shared heartbeat", `
[programs.web]
command = ["/bin/web"]
replicas = 2
[programs.web.watchdog]
heartbeat_file = "/run/web.hb"
`, []string{`f.toml:6: programs.web: key "watchdog.heartbeat_file": with 2 replicas every instance would use /run/web.hb: put {replica} or {name} in it`}},
		{"shared stdout and stderr", `
[programs.web]
command = ["/bin/web"]
stdout = "/var/log/web.log"
stderr = "./web.err"
replicas = 3
`, []string{
			`f.toml:4: programs.web: key "stdout": with 3 replicas every instance would use /var/log/web.log: put {replica} or {name} in it`,
			`programs.web: key "stderr": with 3 replicas every instance would use `,
		}},
		{"shared file from defaults", `
[defaults]
stdout = "/var/log/all.log"
[programs.web]
command = ["/bin/web"]
replicas = 2
`, []string{`programs.web: key "stdout": with 2 replicas every instance would use /var/log/all.log`}},
		{"out of range", `
[programs.a]
command = ["/bin/a"]
replicas = -1
[programs.b]
command = ["/bin/b"]
replicas = 10001
[programs.c]
command = ["/bin/c"]
replicas = "2"
`, []string{
			`f.toml:4: programs.a: key "replicas": must be between 0 and 10000, got -1`,
			`f.toml:7: programs.b: key "replicas": must be between 0 and 10000, got 10001`,
			`f.toml:10: programs.c: key "replicas": expected an integer, got string`,
		}},
		{"instance dependencies", `
[programs.web]
command = ["/bin/web"]
replicas = 2
[programs.db]
command = ["/bin/db"]
[programs.a]
command = ["/bin/a"]
depends_on = ["web:2", "db:0", "nope:1", "web:01"]
[programs.off]
command = ["/bin/off"]
replicas = 0
[programs.b]
command = ["/bin/b"]
depends_on = ["off:0"]
`, []string{
			`programs.a: key "depends_on": "web:2": program "web" has 2 replicas (web:0 to web:1)`,
			`programs.a: key "depends_on": "db:0": program "db" has no replicas: depend on "db"`,
			`programs.a: key "depends_on": unknown program "nope:1"`,
			`programs.a: key "depends_on": unknown program "web:01"`,
			`programs.b: key "depends_on": "off:0": program "off" has replicas = 0 (no instances)`,
		}},
		{"self and cycle through an instance", `
[programs.web]
command = ["/bin/web"]
replicas = 2
depends_on = ["web:0"]
[programs.a]
command = ["/bin/a"]
replicas = 2
depends_on = ["b"]
[programs.b]
command = ["/bin/b"]
depends_on = ["a:1"]
`, []string{
			`programs.web: key "depends_on": program "web:0" depends on itself`,
			`key "depends_on": dependency cycle: `,
		}},
		{"colon in a name", `
[programs."web:0"]
command = ["/bin/web"]
`, []string{`programs.web:0: invalid program name "web:0"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks\n%s", err, w)
				}
			}
		})
	}
}

func TestInstancesForScale(t *testing.T) {
	cfg := mustParse(t, replicatedSrc+`
[programs.plain]
command = ["/bin/plain"]

[programs.shared]
command = ["/bin/shared"]
replicas = 1
[programs.shared.watchdog]
heartbeat_file = "/run/shared.hb"
`)
	web := cfg.Definitions["web"]
	insts, err := web.Instances(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 5 || insts[4].Name != "web:4" || insts[4].Command[2] != "804" || insts[4].Replicas != 5 {
		t.Fatalf("Instances(5)[4] = %+v", insts[4])
	}
	// An instance made by a scale equals the file's except for the count,
	// which a reload applies in place.
	if d := insts[1].Diff(cfg.Programs["web:1"]); !slices.Equal(d, []string{"replicas"}) || NeedsRestart("replicas") {
		t.Errorf("scaled web:1 vs file's Diff = %q", d)
	}
	if got := web.InstanceNames(2); !slices.Equal(got, []string{"web:0", "web:1"}) {
		t.Errorf("InstanceNames = %q", got)
	}
	if got := cfg.Definitions["plain"].InstanceNames(1); !slices.Equal(got, []string{"plain"}) {
		t.Errorf("plain InstanceNames = %q", got)
	}
	if insts, err := web.Instances(0); err != nil || len(insts) != 0 {
		t.Errorf("Instances(0) = %v, %v", insts, err)
	}
	for _, tt := range []struct {
		def  string
		n    int
		want string
	}{
		{"web", MaxReplicas + 1, `programs.web: key "replicas": 10001 replicas: must be between 0 and 10000`},
		{"web", -1, `key "replicas": -1 replicas`},
		{"plain", 2, "programs.plain: no replicas setting, so it runs as one instance: set replicas in [programs.plain] to scale it"},
		{"shared", 2, `programs.shared: key "watchdog.heartbeat_file": with 2 replicas every instance would use /run/shared.hb`},
	} {
		_, err := cfg.Definitions[tt.def].Instances(tt.n)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s.Instances(%d) = %v, want %q", tt.def, tt.n, err, tt.want)
		}
	}
	if insts, err := cfg.Definitions["plain"].Instances(1); err != nil || insts[0].Name != "plain" {
		t.Errorf("plain.Instances(1) = %v, %v", insts, err)
	}
}

func TestReplicasSummaries(t *testing.T) {
	cfg := mustParse(t, replicatedSrc)
	want := "web: /usr/bin/web --port 80{replica} --name={name} (directory /etc/sv/srv/{name}, environment PLAIN,PORT,ROLE, " +
		"replicas 3, depends on db, restart on-failure, stdout /var/log/web-{replica}.log, breaker 5/1m, watchdog 5s on /run/web/{name}.hb)"
	if got := cfg.Definitions["web"].Summary(); got != want {
		t.Errorf("web Summary =\n%s\nwant\n%s", got, want)
	}
	if got := cfg.Definitions["db"].Summary(); strings.Contains(got, "replicas") {
		t.Errorf("db Summary = %q names replicas", got)
	}
	if got := cfg.Definitions["off"].Summary(); !strings.Contains(got, "replicas 0") {
		t.Errorf("off Summary = %q", got)
	}
	got := cfg.Programs["web:1"].InstanceSummary(cfg.Definitions["web"])
	want = "web:1: /usr/bin/web --port 801 --name=web:1 (directory /etc/sv/srv/web:1, environment PORT,ROLE, " +
		"stdout /var/log/web-1.log, watchdog.heartbeat_file /run/web/web:1.hb)"
	if got != want {
		t.Errorf("InstanceSummary =\n%s\nwant\n%s", got, want)
	}
}

func TestReplicasWarningsOncePerProgram(t *testing.T) {
	cfg := mustParse(t, `
[programs.web]
command = ["/nonexistent/web", "{replica}"]
directory = "/nonexistent/{name}"
replicas = 3
`)
	var cmd, dir int
	for _, w := range cfg.Warnings() {
		if w.Program != "programs.web" {
			t.Errorf("warning section %q", w.Program)
		}
		switch w.Key {
		case "command":
			cmd++
		case "directory":
			dir++
		}
	}
	// One missing binary for all three; a directory of each instance.
	if cmd != 1 || dir != 3 {
		t.Errorf("%d command warnings, %d directory warnings; want 1 and 3: %v", cmd, dir, cfg.Warnings())
	}
}

// A template that a path's cleaning removes again does not make the files
// differ.
func TestReplicasTemplateCleanedAway(t *testing.T) {
	_, err := Parse("f.toml", []byte(`
[programs.web]
command = ["/bin/web"]
replicas = 2
watchdog.heartbeat_file = "/run/{name}/../web.hb"
`))
	if err == nil || !strings.Contains(err.Error(), `key "watchdog.heartbeat_file": with 2 replicas every instance would use /run/web.hb`) {
		t.Errorf("err = %v", err)
	}
}

// The README's replicas example is valid and means what it says.
func TestReadmeReplicasExample(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Replicas\n")
	_, block, ok2 := strings.Cut(sec, "```toml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no toml block under ### Replicas in README.md")
	}
	cfg := mustParse(t, block)
	if !slices.Equal(cfg.Order, []string{"web:0", "web:1", "web:2", "lb"}) {
		t.Fatalf("Order = %q", cfg.Order)
	}
	w := cfg.Programs["web:2"]
	if w.Command[2] != "127.0.0.1:8082" || w.Environment["PORT"] != "8082" ||
		w.Stdout.Path != "/var/log/web/web:2.log" || w.Watchdog.HeartbeatFile != "/run/web/2.beat" ||
		w.Readiness == nil || w.Readiness.HTTP != "http://127.0.0.1:8082/healthz" {
		t.Errorf("web:2 = %+v", w)
	}
}
