package conf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Replicas with included files, env files and dependency conditions.

func TestReplicasFromIncludedFiles(t *testing.T) {
	dir := files(t, map[string]string{
		"supervise.toml": `[supervisor]
include = ["conf.d/*.toml"]
[defaults]
env_file = ["common.env"]
[programs.lb]
command = "lb"
depends_on = { web = "ready", "worker:1" = "started" }
`,
		"common.env": "COMMON=1\n",
		"web.env":    "TOKEN=s3cret\nPORT=unused\n",
		"conf.d/web.toml": `
[programs.web]
command = ["/bin/web", "{name}"]
replicas = 2
env_file = ["../common.env", "../web.env"]
environment = { PORT = "80{replica}" }
`,
		"conf.d/worker.toml": `[programs.worker]
command = ["/bin/worker"]
replicas = 3
stdout = "./{name}.log"
`,
	})
	cfg := mustLoad(t, filepath.Join(dir, "supervise.toml"))
	if want := []string{"lb", "web:0", "web:1", "worker:0", "worker:1", "worker:2"}; !slices.Equal(cfg.Order, want) {
		t.Fatalf("Order = %q, want %q", cfg.Order, want)
	}
	if want := []string{"lb", "web", "worker"}; !slices.Equal(cfg.DefinitionOrder, want) {
		t.Fatalf("DefinitionOrder = %q", cfg.DefinitionOrder)
	}
	webFile := filepath.Join(dir, "conf.d/web.toml")
	for i, name := range []string{"web:0", "web:1"} {
		p := cfg.Programs[name]
		if p.File != webFile || p.Line != 2 || p.Origin() != webFile+":2" {
			t.Errorf("%s origin = %q (File %q Line %d)", name, p.Origin(), p.File, p.Line)
		}
		env := p.Env()
		if want := "80" + string(rune('0'+i)); env["TOKEN"] != "s3cret" || env["COMMON"] != "1" || env["PORT"] != want {
			t.Errorf("%s Env = %v", name, env)
		}
		if len(p.EnvFile) != 2 || p.EnvFile[1].Path != filepath.Join(dir, "web.env") {
			t.Errorf("%s env files = %v", name, p.EnvFile)
		}
	}
	// Relative templated paths are taken from the included file's directory.
	if got := cfg.Programs["worker:2"].Stdout.Path; got != filepath.Join(dir, "conf.d/worker:2.log") {
		t.Errorf("worker:2 stdout = %q", got)
	}
	if p := cfg.Programs["worker:0"]; p.Env()["COMMON"] != "1" {
		t.Errorf("worker:0 lacks the env file of [defaults]: %v", p.Env())
	}
	// Each env file is read once, whatever the count of instances.
	var envs []string
	for _, f := range cfg.Sources.Files {
		if f.Kind == SourceEnv {
			envs = append(envs, filepath.Base(f.Path))
		}
	}
	if !slices.Equal(envs, []string{"common.env", "web.env"}) {
		t.Errorf("env sources = %q", envs)
	}
	lb := cfg.Programs["lb"]
	if want := []Dependency{{"web", DependsReady}, {"worker:1", DependsStarted}}; !slices.Equal(lb.DependsOn, want) {
		t.Errorf("lb depends_on = %v", lb.DependsOn)
	}
	if s := lb.Summary(); !strings.Contains(s, "depends on web, worker:1 (started)") {
		t.Errorf("lb Summary = %q", s)
	}

	// Problems of a program with replicas are reported in its own file.
	os.WriteFile(filepath.Join(dir, "conf.d/worker.toml"), []byte(`[programs.worker]
command = ["/bin/worker"]
replicas = 3
stdout = "./worker.log"
`), 0o644)
	_, err := Load(filepath.Join(dir, "supervise.toml"))
	want := filepath.Join(dir, "conf.d/worker.toml") + `:4: programs.worker: key "stdout": with 3 replicas every instance would use ` +
		filepath.Join(dir, "conf.d/worker.log")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
}

func TestReplicasDependencyConditions(t *testing.T) {
	cfg := mustParse(t, `
[programs.migrate]
command = ["/bin/migrate", "--shard", "{replica}"]
replicas = 2
restart = "never"
[programs.web]
command = ["/bin/web"]
replicas = 2
[programs.api]
command = ["/bin/api"]
depends_on = { migrate = "completed", "web:1" = "started", "migrate:0" = "completed" }
`)
	want := []Dependency{{"migrate", DependsCompleted}, {"migrate:0", DependsCompleted}, {"web:1", DependsStarted}}
	if got := cfg.Programs["api"].DependsOn; !slices.Equal(got, want) {
		t.Errorf("api depends_on = %v, want %v", got, want)
	}
	_, err := Parse("f.toml", []byte(`
[programs.web]
command = ["/bin/web"]
replicas = 2
restart = "always"
[programs.a]
command = ["/bin/a"]
depends_on = { "web:2" = "started", "web:1" = "completed" }
`))
	for _, w := range []string{
		`programs.a: key "depends_on": "web:2": program "web" has 2 replicas (web:0 to web:1)`,
		`programs.a: key "depends_on": "web:1" never completes: it has restart = "always"`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\nlacks\n%s", err, w)
		}
	}
}
