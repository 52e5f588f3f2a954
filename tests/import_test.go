package tests

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/supervise/supervise/control"
)

// The golden inputs of conf/importer, converted by `supervise import`,
// checked by `supervise validate`, and run: every program starts, the
// commands get the arguments, environment and directory the source gave
// them (their scripts exit 3 otherwise, which the failure counts show),
// and the dependencies hold.

// importCase is one input and what running its conversion must show.
type importCase struct {
	dir, file string   // under conf/importer/testdata
	env       []string // the supervisor's extra environment
	check     func(t *testing.T, s *sup)
}

var importCases = []importCase{
	{dir: "supervisord", file: "supervisord.conf", env: []string{"EXPORTER_PORT=19499"}, check: checkSupervisord},
	{dir: "supervisord-basic", file: "supervisord.conf", check: checkSupervisordBasic},
	{dir: "procfile", file: "Procfile", check: checkProcfile},
	{dir: "process-compose", file: "process-compose.yaml", check: checkProcessCompose},
	{dir: "process-compose-basic", file: "process-compose.yaml", check: checkProcessComposeBasic},
}

func TestImportRunsForReal(t *testing.T) {
	for _, c := range importCases {
		t.Run(c.dir, func(t *testing.T) {
			t.Parallel()
			dir := copyTree(t, filepath.Join(moduleRoot, "conf", "importer", "testdata", c.dir))
			r := runBin(t, 20*time.Second, "import", filepath.Join(dir, c.file))
			if r.code != 0 || r.stdout == "" {
				t.Fatalf("import: %s", r)
			}
			cfg := filepath.Join(dir, "supervise.toml")
			if err := os.WriteFile(cfg, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			skipUnknownFeatures(t, r.stdout)
			if v := runBin(t, 20*time.Second, "validate", "-c", cfg); v.code != 0 {
				t.Fatalf("validate of the import: %s\n%s", v, r.stdout)
			}
			s := &sup{dir: dir, cfg: cfg, log: filepath.Join(dir, "supervise.log"), pids: map[int]bool{}, done: make(chan struct{}), env: c.env}
			s.sock = filepath.Join(shortDir(t), "ctl.sock")
			s.start(t)
			c.check(t, s)
			if t.Failed() {
				t.Logf("the configuration:\n%s", r.stdout)
			}
		})
	}
}

// copyTree copies an input's directory, file modes included, so that the
// programs write their files in the test's own directory.
func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// feature is a part of the configuration being built beside the importer;
// a conversion that uses it can only run once supervise knows it.
type feature struct {
	name, issue string
	probe       string                    // a configuration using it
	refusal     string                    // what validate says of probe while the feature is unknown
	uses        func(map[string]any) bool // whether a configuration uses it
	usesText    func(string) bool         // the same, by the text
}

var importFeatures = []feature{
	{name: "probes", issue: "issue 10",
		probe:   "[programs.a]\ncommand = [\"true\"]\n[programs.a.readiness]\nexec = [\"true\"]\n",
		refusal: `unknown key "readiness"`,
		uses:    func(c map[string]any) bool { return anyProgram(c, "readiness") || anyProgram(c, "liveness") }},
	{name: "dependency conditions", issue: "issue 10",
		probe:   "[programs.a]\ncommand = [\"true\"]\ndepends_on = { b = \"started\" }\n[programs.b]\ncommand = [\"true\"]\n",
		refusal: `key "depends_on": expected an array`,
		uses: func(c map[string]any) bool {
			return anyProgramValue(c, "depends_on", func(v any) bool { _, table := v.(map[string]any); return table })
		}},
	{name: "replicas", issue: "issue 11",
		probe:    "[programs.a]\ncommand = [\"true\"]\nreplicas = 2\n",
		refusal:  `unknown key "replicas"`,
		uses:     func(c map[string]any) bool { return anyProgram(c, "replicas") },
		usesText: func(s string) bool { return strings.Contains(s, "{replica}") || strings.Contains(s, "{name}") }},
	{name: "log rotation", issue: "issue 12",
		probe:   "[programs.a]\ncommand = [\"true\"]\nstdout = \"/tmp/a.log\"\nlog_max_size = \"1MB\"\n",
		refusal: `unknown key "log_max_size"`,
		uses:    func(c map[string]any) bool { return anyProgram(c, "log_max_size") || anyProgram(c, "log_max_files") }},
}

// skipUnknownFeatures skips the test when the configuration uses a
// feature this build of supervise refuses as unknown (and only then: a
// probe refused for another reason fails the test).
func skipUnknownFeatures(t *testing.T, text string) {
	t.Helper()
	var c map[string]any
	if _, err := toml.Decode(text, &c); err != nil {
		t.Fatalf("the import is not TOML: %v\n%s", err, text)
	}
	var missing []string
	for _, f := range importFeatures {
		if !f.uses(c) && (f.usesText == nil || !f.usesText(text)) {
			continue
		}
		path := filepath.Join(t.TempDir(), "probe.toml")
		if err := os.WriteFile(path, []byte(f.probe), 0o644); err != nil {
			t.Fatal(err)
		}
		v := runBin(t, 20*time.Second, "validate", "-c", path)
		switch {
		case v.code == 0:
		case v.code == 2 && strings.Contains(v.stderr, f.refusal):
			missing = append(missing, fmt.Sprintf("%s (%s)", f.name, f.issue))
		default:
			t.Fatalf("validate of a file using %s: %s", f.name, v)
		}
	}
	if len(missing) > 0 {
		t.Skip("needs " + strings.Join(missing, ", "))
	}
}

func anyProgram(c map[string]any, key string) bool {
	return anyProgramValue(c, key, func(any) bool { return true })
}

func anyProgramValue(c map[string]any, key string, ok func(any) bool) bool {
	tables := []any{c["defaults"]}
	if progs, _ := c["programs"].(map[string]any); progs != nil {
		for _, p := range progs {
			tables = append(tables, p)
		}
	}
	for _, p := range tables {
		if m, _ := p.(map[string]any); m != nil {
			if v, set := m[key]; set && ok(v) {
				return true
			}
		}
	}
	return false
}

// healthy waits until each program is running, and checks that none failed
// or restarted: a script exits 3 when what the source gave it is missing.
func healthy(t *testing.T, s *sup, names ...string) {
	t.Helper()
	for _, n := range names {
		p := s.running(t, n)
		if p.Stats.Failures != 0 || p.Restarts != 0 {
			t.Errorf("%s: %d failures, %d restarts: %s", n, p.Stats.Failures, p.Restarts, describe(p))
		}
	}
}

// stoppedByOperator checks that a program with autostart = false stays
// stopped.
func stoppedByOperator(t *testing.T, s *sup, name string) {
	t.Helper()
	if p := s.prog(t, name); p.State != "stopped" || p.Stats.Starts != 0 {
		t.Errorf("%s: want stopped, never started: %s", name, describe(p))
	}
}

// httpGet waits until url answers 200 and returns the body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	waitFor(t, "GET "+url, waitDefault, func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200, resp.Status
	})
	return body
}

// fileHolds waits until the file holds every text.
func fileHolds(t *testing.T, path string, texts ...string) {
	t.Helper()
	waitFor(t, path+" holding "+strings.Join(texts, ", "), waitDefault, func() (bool, string) {
		b, _ := os.ReadFile(path)
		for _, x := range texts {
			if !strings.Contains(string(b), x) {
				return false, string(b)
			}
		}
		return true, ""
	})
}

func checkSupervisord(t *testing.T, s *sup) {
	healthy(t, s, "kv", "app-web:0", "app-web:1", "app-web:2", "app-worker", "exporter")
	stoppedByOperator(t, s, "cron")
	// numprocs = 3 with %(process_num)02d in the port: 19400 to 19402.
	for i := range 3 {
		if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:194%02d/", i)); !strings.Contains(body, "<h1>web</h1>") {
			t.Errorf("web %d: served %q, not the directory's index.html", i, body)
		}
	}
	// redirect_stderr: both streams in the rotated log file.
	fileHolds(t, filepath.Join(s.dir, "logs", "kv.log"), "kv: listening on 19379", "kv: on stderr")
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

func checkSupervisordBasic(t *testing.T, s *sup) {
	healthy(t, s, "php-fpm", "nginx", "queue", "scheduler")
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	// nginx (priority 10) stops with QUIT before php-fpm (priority 5).
	b, _ := os.ReadFile(filepath.Join(s.dir, "stops"))
	if got := string(b); got != "nginx QUIT\nfpm TERM\n" {
		t.Errorf("stops: %q, want nginx with QUIT, then php-fpm", got)
	}
}

func checkProcfile(t *testing.T, s *sup) {
	healthy(t, s, "web", "worker", "clock")
}

func checkProcessCompose(t *testing.T, s *sup) {
	healthy(t, s, "db", "cache:0", "cache:1")
	// migrate runs once the database is ready (it exits 3 if not), and
	// completes.
	m := s.waitProg(t, "migrate", "completed", func(p control.ProgramStatus) bool {
		return p.State == "exited" && p.LastExit != nil && p.LastExit.Code == 0
	})
	if m.Stats.Failures != 0 {
		t.Errorf("migrate failed before the database was ready: %s", describe(m))
	}
	// api starts after migrate completed (it exits 3 if not) and is ready
	// when its HTTP probe passes.
	api := s.waitProg(t, "api", "ready", func(p control.ProgramStatus) bool { return p.State == "running" && p.Ready })
	if api.Stats.Failures != 0 || api.Restarts != 0 {
		t.Errorf("api: %s", describe(api))
	}
	if body := httpGet(t, "http://127.0.0.1:19580/healthz"); body != "ok\n" {
		t.Errorf("api /healthz: %q", body)
	}
	stoppedByOperator(t, s, "docs")
	fileHolds(t, filepath.Join(s.dir, "logs", "api.log"), "api: on 19580")
}

func checkProcessComposeBasic(t *testing.T, s *sup) {
	healthy(t, s, "server", "worker")
	once := s.waitProg(t, "once", "completed", func(p control.ProgramStatus) bool {
		return p.State == "exited" && p.LastExit != nil && p.LastExit.Code == 0
	})
	if once.Stats.Failures != 0 {
		t.Errorf("once: %s", describe(once))
	}
	fileHolds(t, filepath.Join(s.dir, "logs", "once.txt"), "started at ")
	fileHolds(t, filepath.Join(s.dir, "logs", "server.log"), "server: hello world on 127.0.0.1:19611")
	stoppedByOperator(t, s, "tools")
	if s.exited() {
		t.Errorf("the supervisor ended when the critical one-shot task succeeded")
	}
}

// TestImportCommandLine: detection, --format, notes on stderr with exit 0,
// and exit 2 with file:line for a file that does not parse.
func TestImportCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("supervisord.conf", "[program:web]\ncommand=/bin/web\numask=022\n[eventlistener:mail]\ncommand=crashmail\n")
	r := runBin(t, 20*time.Second, "import", conf)
	if r.code != 0 || !strings.Contains(r.stdout, "[programs.web]") {
		t.Fatalf("import: %s", r)
	}
	for _, want := range []string{
		conf + ":3: [program:web] umask: not converted",
		conf + ":4: [eventlistener:mail]: not converted: run its command from a hook instead, [hooks.mail] with the events it wants (SPEC §15)",
		"supervise import: 2 settings of " + conf + " not converted exactly, listed above (supervisord)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	// The same input gives the same bytes.
	if again := runBin(t, 20*time.Second, "import", conf); again.stdout != r.stdout || again.stderr != r.stderr {
		t.Errorf("a second import differs")
	}

	procfile := write("Procfile.prod", "web: bin/web\n")
	if r := runBin(t, 20*time.Second, "import", procfile); r.code != 0 || !strings.Contains(r.stdout, "from "+procfile+" (Procfile)") || r.stderr != "" {
		t.Errorf("Procfile: %s", r)
	}
	// --format overrides the detection: this Procfile line is also YAML.
	yml := write("pc.yaml", "processes:\n  web:\n    command: web\n")
	if r := runBin(t, 20*time.Second, "import", "--format", "process-compose", yml); r.code != 0 || !strings.Contains(r.stdout, "(process-compose)") {
		t.Errorf("--format process-compose: %s", r)
	}
	if r := runBin(t, 20*time.Second, "import", "--format", "procfile", conf); r.code != 2 || !strings.Contains(r.stderr, conf+":1: not a \"name: command\" line") {
		t.Errorf("--format procfile of an INI file: %s", r)
	}
	if r := runBin(t, 20*time.Second, "import", "--format", "systemd", conf); r.code != 2 || !strings.Contains(r.stderr, `--format "systemd": want supervisord, procfile or process-compose`) {
		t.Errorf("--format systemd: %s", r)
	}
	bad := write("bad.conf", "[program:web]\ncommand=/bin/web\nthis is not ini\n")
	if r := runBin(t, 20*time.Second, "import", bad); r.code != 2 || r.stdout != "" ||
		r.stderr != "supervise import: "+bad+":3: not a [section] header, a key = value line or an indented continuation: \"this is not ini\"\n" {
		t.Errorf("a file that does not parse: %s", r)
	}
	if r := runBin(t, 20*time.Second, "import", filepath.Join(dir, "missing.conf")); r.code != 2 || !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("a missing file: %s", r)
	}
	if r := runBin(t, 20*time.Second, "import"); r.code != 2 || !strings.Contains(r.stderr, "usage: supervise import FILE") {
		t.Errorf("no file: %s", r)
	}
}
