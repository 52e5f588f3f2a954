package conf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("/etc/sv/supervise.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// builtin returns a program as the built-in defaults make it.
func builtin(name string, argv ...string) *Program {
	p := defaultProgram(name)
	p.Command = argv
	return p
}

// A file with no settings is refused, since a reload applying it would stop
// every program; a [supervisor] table alone is a valid file with no programs.
func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "   \n\t\n", "# nothing\n\n  # at all\r\n", "\ufeff"} {
		cfg, err := Parse("supervise.toml", []byte(src))
		const want = "supervise.toml: the file has no settings; an empty configuration would stop every program " +
			"(write a [supervisor] table to run no programs)"
		if cfg != nil || err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, %v; want the error %q", src, cfg, err, want)
		}
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q): errors.Is(ErrInvalid, ErrEmpty) false for %v", src, err)
		}
	}
	for _, src := range []string{"[supervisor]\n", "# comment\n[supervisor] # no keys\n", "[programs]\n"} {
		cfg := mustParse(t, src)
		want := Default()
		want.File = "/etc/sv/supervise.toml"
		if !reflect.DeepEqual(cfg.Supervisor, want.Supervisor) {
			t.Errorf("%q: supervisor = %+v, want %+v", src, cfg.Supervisor, want.Supervisor)
		}
		if len(cfg.Programs) != 0 || len(cfg.Order) != 0 || len(cfg.Teardown) != 0 {
			t.Errorf("%q gave programs %v, teardown %v", src, cfg.Order, cfg.Teardown)
		}
		if cfg.File != "/etc/sv/supervise.toml" {
			t.Errorf("File = %q", cfg.File)
		}
	}
}

func TestBuiltinDefaults(t *testing.T) {
	s := Default().Supervisor
	want := Supervisor{LogLevel: "info", LogFormat: "console", HeartbeatInterval: 10 * time.Second,
		ShutdownTimeout: 30 * time.Second, ForceExitCode: 1, WatchConfig: true, StopSignal: syscall.SIGTERM}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Default().Supervisor = %+v, want %+v", s, want)
	}
	cfg := mustParse(t, "[programs.a]\ncommand = [\"/bin/a\"]\n")
	p := cfg.Programs["a"]
	wantP := &Program{
		Name: "a", File: "/etc/sv/supervise.toml", Line: 1, Base: "a", Replicas: 1, Command: []string{"/bin/a"}, Environment: map[string]string{},
		Autostart: true, Restart: RestartOnFailure, SuccessExitCodes: []int{0},
		MinUptime: 5 * time.Second, BackoffInitial: 100 * time.Millisecond, BackoffMax: 30 * time.Second,
		StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second, StopPriority: 100,
		Stdout: Output{Kind: OutputLog}, Stderr: Output{Kind: OutputLog},
		Breaker: Breaker{MaxFailures: 5, ResetTimeout: 60 * time.Second, HalfOpenMaxCalls: 1},
	}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("program =\n%+v\nwant\n%+v", p, wantP)
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, c *Config)
	}{
		{"string command runs via sh", `
[programs.a]
command = "echo hi | cat"`, func(t *testing.T, c *Config) {
			want := []string{"/bin/sh", "-c", "echo hi | cat"}
			if got := c.Programs["a"].Command; !slices.Equal(got, want) {
				t.Errorf("Command = %q, want %q", got, want)
			}
		}},
		{"array command kept as argv", `
[programs.a]
command = ["/bin/echo", "a b", "$HOME"]`, func(t *testing.T, c *Config) {
			want := []string{"/bin/echo", "a b", "$HOME"}
			if got := c.Programs["a"].Command; !slices.Equal(got, want) {
				t.Errorf("Command = %q, want %q", got, want)
			}
		}},
		{"durations both ways", `
[supervisor]
heartbeat_interval = 2
shutdown_timeout = 0.5
[programs.a]
command = ["/bin/a"]
min_uptime = "1m30s"
backoff_initial = 0
backoff_max = 1.25
stop_timeout = "250ms"
breaker = { reset_timeout = 7 }
[teardown.t]
command = ["/bin/t"]
timeout = "2m"`, func(t *testing.T, c *Config) {
			p := c.Programs["a"]
			got := []time.Duration{c.Supervisor.HeartbeatInterval, c.Supervisor.ShutdownTimeout,
				p.MinUptime, p.BackoffInitial, p.BackoffMax, p.StopTimeout, p.Breaker.ResetTimeout,
				c.Teardown["t"].Timeout}
			want := []time.Duration{2 * time.Second, 500 * time.Millisecond, 90 * time.Second, 0,
				1250 * time.Millisecond, 250 * time.Millisecond, 7 * time.Second, 2 * time.Minute}
			if !slices.Equal(got, want) {
				t.Errorf("durations = %v, want %v", got, want)
			}
		}},
		{"defaults inherited", `
[defaults]
restart = "always"
stop_signal = "SIGINT"
environment = { A = "1" }
[programs.a]
command = ["/bin/a"]
[programs.b]
command = ["/bin/b"]
restart = "never"
environment = { B = "2" }`, func(t *testing.T, c *Config) {
			a, b := c.Programs["a"], c.Programs["b"]
			if a.Restart != RestartAlways || b.Restart != RestartNever {
				t.Errorf("restart a=%q b=%q, want always, never", a.Restart, b.Restart)
			}
			if a.StopSignal != syscall.SIGINT || b.StopSignal != syscall.SIGINT {
				t.Errorf("stop signals %v %v, want SIGINT", a.StopSignal, b.StopSignal)
			}
			if !reflect.DeepEqual(a.Environment, map[string]string{"A": "1"}) ||
				!reflect.DeepEqual(b.Environment, map[string]string{"A": "1", "B": "2"}) {
				t.Errorf("environments %v %v", a.Environment, b.Environment)
			}
			// The programs must not share the map.
			a.Environment["X"] = "y"
			if _, ok := b.Environment["X"]; ok {
				t.Error("programs share one environment map")
			}
		}},
		{"precedence program over defaults over builtin, per subtable key", `
[defaults]
stop_priority = 5
backoff_max = "10s"
[defaults.breaker]
max_failures = 9
reset_timeout = "2s"
[programs.a]
command = ["/bin/a"]
stop_priority = 7
[programs.a.breaker]
reset_timeout = "3s"`, func(t *testing.T, c *Config) {
			p := c.Programs["a"]
			if p.StopPriority != 7 || p.BackoffMax != 10*time.Second || p.BackoffInitial != DefaultBackoffInitial {
				t.Errorf("stop_priority %d backoff_max %v backoff_initial %v", p.StopPriority, p.BackoffMax, p.BackoffInitial)
			}
			want := Breaker{MaxFailures: 9, ResetTimeout: 3 * time.Second, HalfOpenMaxCalls: 1}
			if p.Breaker != want {
				t.Errorf("breaker %+v, want %+v", p.Breaker, want)
			}
		}},
		{"watchdog in defaults, heartbeat file per program", `
[defaults.watchdog]
timeout = "20s"
action = "log"
[programs.a]
command = ["/bin/a"]
watchdog = { heartbeat_file = "/run/a.hb" }
[programs.b]
command = ["/bin/b"]
[programs.b.watchdog]
heartbeat_file = "hb/b"
timeout = "40s"
start_grace = "2m"`, func(t *testing.T, c *Config) {
			wa := Watchdog{HeartbeatFile: "/run/a.hb", Timeout: 20 * time.Second, StartGrace: 20 * time.Second, Action: WatchdogLog}
			wb := Watchdog{HeartbeatFile: "/etc/sv/hb/b", Timeout: 40 * time.Second, StartGrace: 2 * time.Minute, Action: WatchdogLog}
			if *c.Programs["a"].Watchdog != wa || *c.Programs["b"].Watchdog != wb {
				t.Errorf("watchdogs %+v %+v", *c.Programs["a"].Watchdog, *c.Programs["b"].Watchdog)
			}
		}},
		{"start_grace follows the final timeout", `
[defaults.watchdog]
timeout = "20s"
[programs.a]
command = ["/bin/a"]
watchdog = { heartbeat_file = "/run/a.hb", timeout = "45s" }`, func(t *testing.T, c *Config) {
			if w := c.Programs["a"].Watchdog; w.StartGrace != 45*time.Second || w.Action != WatchdogRestart {
				t.Errorf("watchdog %+v", *w)
			}
		}},
		{"no watchdog table means nil", `
[programs.a]
command = ["/bin/a"]`, func(t *testing.T, c *Config) {
			if c.Programs["a"].Watchdog != nil {
				t.Error("Watchdog set without a table")
			}
		}},
		{"order is file order and lines are headers", `
[programs.zeta]
command = ["/bin/z"]

[programs.alpha]
command = ["/bin/a"]
depends_on = ["zeta"]

[programs.mid]
command = ["/bin/m"]`, func(t *testing.T, c *Config) {
			if want := []string{"zeta", "alpha", "mid"}; !slices.Equal(c.Order, want) {
				t.Errorf("Order = %v, want %v", c.Order, want)
			}
			if l := c.Programs["alpha"].Line; l != 5 {
				t.Errorf("alpha.Line = %d, want 5", l)
			}
		}},
		{"outputs and relative paths", `
[supervisor]
socket = "off"
[programs.a]
command = ["/bin/a"]
directory = "work"
stdout = "./logs/a.out"
stderr = "null"
[programs.b]
command = ["/bin/b"]
stdout = "inherit"
stderr = "/var/log/b"`, func(t *testing.T, c *Config) {
			a, b := c.Programs["a"], c.Programs["b"]
			if a.Directory != "/etc/sv/work" || a.Stdout != (Output{OutputFile, "/etc/sv/logs/a.out"}) ||
				a.Stderr != (Output{Kind: OutputNull}) || b.Stdout != (Output{Kind: OutputInherit}) ||
				b.Stderr != (Output{OutputFile, "/var/log/b"}) {
				t.Errorf("a: %q %v %v; b: %v %v", a.Directory, a.Stdout, a.Stderr, b.Stdout, b.Stderr)
			}
			if c.Supervisor.Socket != "off" {
				t.Errorf("socket %q", c.Supervisor.Socket)
			}
		}},
		{"signals by number and name, numeric ids", `
[programs.a]
command = ["/bin/a"]
stop_signal = 2
user = 1000
group = "staff"
[programs.b]
command = ["/bin/b"]
stop_signal = "usr1"`, func(t *testing.T, c *Config) {
			a, b := c.Programs["a"], c.Programs["b"]
			if a.StopSignal != syscall.SIGINT || b.StopSignal != syscall.SIGUSR1 || a.User != "1000" || a.Group != "staff" {
				t.Errorf("a %v %q %q; b %v", a.StopSignal, a.User, a.Group, b.StopSignal)
			}
		}},
		{"dotted keys, inline and quoted tables", `
programs.a.command = ["/bin/a"]
programs.a.breaker.max_failures = 2
programs.b = { command = "run b", critical = true }
[programs."c.d"]
"command" = ["/bin/c"]
'stop_priority' = -3`, func(t *testing.T, c *Config) {
			if c.Programs["a"].Breaker.MaxFailures != 2 || !c.Programs["b"].Critical || c.Programs["c.d"].StopPriority != -3 {
				t.Errorf("programs %+v", c.Programs)
			}
			if want := []string{"a", "b", "c.d"}; !slices.Equal(c.Order, want) {
				t.Errorf("Order = %v, want %v", c.Order, want)
			}
		}},
		{"empty success codes and log burst", `
[programs.a]
command = ["/bin/a"]
success_exit_codes = []
log_rate = 2.5`, func(t *testing.T, c *Config) {
			p := c.Programs["a"]
			if len(p.SuccessExitCodes) != 0 || p.LogRate != 2.5 || p.LogBurst != 0 || p.EffectiveLogBurst() != 3 {
				t.Errorf("codes %v rate %v burst %d effective %d", p.SuccessExitCodes, p.LogRate, p.LogBurst, p.EffectiveLogBurst())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src))
		})
	}
}

func TestFullFile(t *testing.T) {
	path := filepath.Join("testdata", "good", "full.toml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "good"))
	wantSup := Supervisor{LogLevel: "debug", LogFormat: "json", Socket: "/run/sv.sock",
		HeartbeatFile: filepath.Join(dir, "run/sv.hb"), Metrics: "127.0.0.1:9100",
		HeartbeatInterval: 5 * time.Second, ShutdownTimeout: 45 * time.Second, ForceExitCode: 3, StopSignal: syscall.SIGTERM}
	if !reflect.DeepEqual(cfg.Supervisor, wantSup) {
		t.Errorf("supervisor\n%+v\nwant\n%+v", cfg.Supervisor, wantSup)
	}
	web := &Program{
		Name: "web", File: path, Line: 25, Base: "web", Replicas: 1, Command: []string{"/usr/bin/web", "--port", "8080"},
		Directory: "/srv/web", Environment: map[string]string{"LANG": "C", "TZ": "Europe/Paris", "PORT": "8080"},
		ClearEnvironment: true, User: "www-data", Group: "33", Autostart: false, DependsOn: []Dependency{{"db", DependsReady}},
		Restart: RestartOnFailure, SuccessExitCodes: []int{0, 143}, MinUptime: 2 * time.Second,
		BackoffInitial: 250 * time.Millisecond, BackoffMax: time.Minute, StopSignal: syscall.SIGINT,
		StopTimeout: 3 * time.Second, StopPriority: 10, Critical: true,
		Stdout: Output{OutputFile, filepath.Join(dir, "logs/web.out")}, Stderr: Output{OutputFile, "/var/log/web.err"},
		LogRate: 12.5, LogBurst: 40, Notify: true,
		Breaker:  Breaker{MaxFailures: 7, ResetTimeout: 90 * time.Second, HalfOpenMaxCalls: 2},
		Watchdog: &Watchdog{HeartbeatFile: "/run/web/heartbeat", Timeout: 15 * time.Second, StartGrace: 15 * time.Second, Action: WatchdogStop},
	}
	if got := cfg.Programs["web"]; !reflect.DeepEqual(got, web) {
		t.Errorf("web =\n%+v\nwant\n%+v", got, web)
	}
	if sh := cfg.Programs["shell"]; sh.StopSignal != syscall.SIGHUP || sh.Restart != RestartAlways || sh.StopTimeout != 20*time.Second {
		t.Errorf("shell = %+v", sh)
	}
	wantTD := map[string]*TeardownStep{
		"deregister": {Name: "deregister", File: path, Line: 64, Command: []string{"/usr/bin/lb-ctl", "drain", "web"}, Priority: 10, Timeout: 5 * time.Second},
		"flush":      {Name: "flush", File: path, Line: 69, Command: []string{"/bin/sh", "-c", "sync"}, Priority: 100, Timeout: 10 * time.Second},
	}
	if !reflect.DeepEqual(cfg.Teardown, wantTD) {
		t.Errorf("teardown = %+v", cfg.Teardown)
	}
	if want := []string{"db", "web", "shell"}; !slices.Equal(cfg.Order, want) {
		t.Errorf("Order = %v", cfg.Order)
	}
}

func TestSpecExampleIsValid(t *testing.T) {
	if _, err := Load(filepath.Join("testdata", "good", "spec.toml")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestSpecErrorText(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "bad", "unknown_key.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("supervise.toml", data)
	const want = `supervise.toml:14: programs.web: unknown key "comand" (did you mean "command"?)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant it to contain %s", err, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(err, ErrInvalid) = false")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is a %T, not an ErrorList", err)
	}
	found := false
	for _, e := range list {
		found = found || e.Key == "comand" && e.Program == "programs.web" && e.Line == 14 && e.File == "supervise.toml"
	}
	if !found {
		t.Errorf("no *Error with Key comand at line 14 in %#v", list)
	}
}

func TestAddCommand(t *testing.T) {
	c := Default()
	if err := c.AddCommand([]string{"/bin/sleep", "1"}); err != nil {
		t.Fatal(err)
	}
	p := c.Programs[MainProgram]
	want := builtin(MainProgram, "/bin/sleep", "1")
	want.Critical = true
	if !reflect.DeepEqual(p, want) || !slices.Equal(c.Order, []string{"main"}) {
		t.Errorf("main = %+v, order %v", p, c.Order)
	}
	if err := c.AddCommand([]string{"/bin/true"}); !errors.Is(err, ErrProgramExists) {
		t.Errorf("second AddCommand: %v, want ErrProgramExists", err)
	}
	if err := Default().AddCommand(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddCommand(nil): %v", err)
	}
}

func TestAddCommandInheritsDefaults(t *testing.T) {
	c := mustParse(t, `
[defaults]
stop_signal = "INT"
environment = { A = "1" }
[programs.db]
command = ["/bin/db"]`)
	if err := c.AddCommand([]string{"/bin/app"}); err != nil {
		t.Fatal(err)
	}
	p := c.Programs["main"]
	if p.StopSignal != syscall.SIGINT || p.Environment["A"] != "1" || !p.Critical || !slices.Equal(c.Order, []string{"db", "main"}) {
		t.Errorf("main = %+v order %v", p, c.Order)
	}
}

func TestAddCommandRefusedLeavesConfig(t *testing.T) {
	c := mustParse(t, `
[defaults]
depends_on = ["db"]
[programs.db]
command = ["/bin/db"]
depends_on = []`)
	if err := c.AddCommand([]string{"/bin/app"}); err != nil {
		t.Fatalf("main depending on db: %v", err)
	}
	c = mustParse(t, `
[programs.main]
command = ["/bin/db"]`)
	err := c.AddCommand([]string{"/bin/app"})
	if !errors.Is(err, ErrProgramExists) || !strings.Contains(err.Error(), `programs.main`) {
		t.Fatalf("AddCommand with main present: %v", err)
	}
	if c.Programs["main"].Command[0] != "/bin/db" || len(c.Order) != 1 {
		t.Error("refused AddCommand changed the config")
	}
}

func TestApply(t *testing.T) {
	c := Default()
	if err := c.Apply(Overrides{LogLevel: "debug", LogFormat: "json", Socket: "/tmp/s"}); err != nil {
		t.Fatal(err)
	}
	if s := c.Supervisor; s.LogLevel != "debug" || s.LogFormat != "json" || s.Socket != "/tmp/s" {
		t.Errorf("after Apply: %+v", s)
	}
	if err := c.Apply(Overrides{}); err != nil || c.Supervisor.LogLevel != "debug" {
		t.Errorf("empty overrides: %v, %+v", err, c.Supervisor)
	}
	err := c.Apply(Overrides{LogLevel: "verbose", LogFormat: "jsn"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"verbose"`) || !strings.Contains(err.Error(), `did you mean "json"`) {
		t.Errorf("bad overrides: %v", err)
	}
	if c.Supervisor.LogLevel != "debug" || c.Supervisor.LogFormat != "json" {
		t.Error("refused overrides were applied")
	}
}

func TestResolve(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("SUPERVISE_CONFIG", "")
	if got := Resolve(""); got != "/etc/supervise/supervise.toml" {
		t.Errorf("nothing set: %q", got)
	}
	if err := os.WriteFile("supervise.toml", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Resolve(""); got != "supervise.toml" {
		t.Errorf("./supervise.toml present: %q", got)
	}
	t.Setenv("SUPERVISE_CONFIG", "/env.toml")
	if got := Resolve(""); got != "/env.toml" {
		t.Errorf("env set: %q", got)
	}
	if got := Resolve("/flag.toml"); got != "/flag.toml" {
		t.Errorf("flag set: %q", got)
	}
}

func TestEqual(t *testing.T) {
	base := func() *Program {
		c := mustParse(t, `
[programs.a]
command = ["/bin/a", "x"]
environment = { A = "1" }
depends_on = ["b"]
watchdog = { heartbeat_file = "/run/a" }
[programs.b]
command = ["/bin/b"]`)
		return c.Programs["a"]
	}
	if !base().Equal(base()) {
		t.Fatal("identical programs not Equal")
	}
	moved := base()
	moved.Line = 99
	if !base().Equal(moved) {
		t.Error("Line should be ignored")
	}
	changes := map[string]func(p *Program){
		"command":     func(p *Program) { p.Command[1] = "y" },
		"environment": func(p *Program) { p.Environment["A"] = "2" },
		"env added":   func(p *Program) { p.Environment["B"] = "" },
		"depends_on":  func(p *Program) { p.DependsOn = nil },
		"exit codes":  func(p *Program) { p.SuccessExitCodes = []int{0, 1} },
		"watchdog":    func(p *Program) { p.Watchdog.Timeout++ },
		"no watchdog": func(p *Program) { p.Watchdog = nil },
		"breaker":     func(p *Program) { p.Breaker.MaxFailures++ },
		"stdout":      func(p *Program) { p.Stdout = Output{OutputFile, "/x"} },
		"signal":      func(p *Program) { p.StopSignal = syscall.SIGKILL },
		"log rate":    func(p *Program) { p.LogRate = 1 },
		"notify":      func(p *Program) { p.Notify = true },
		"user":        func(p *Program) { p.User = "nobody" },
		"directory":   func(p *Program) { p.Directory = "/" },
		"name":        func(p *Program) { p.Name = "z" },
	}
	for name, change := range changes {
		p := base()
		change(p)
		if base().Equal(p) || p.Equal(base()) {
			t.Errorf("%s changed but Equal reports true", name)
		}
	}
	var nilP *Program
	if !nilP.Equal(nil) || nilP.Equal(base()) || base().Equal(nil) {
		t.Error("nil handling")
	}
}

func TestTeardownEqual(t *testing.T) {
	a := &TeardownStep{Name: "x", Command: []string{"a"}, Priority: 1, Timeout: time.Second}
	b := *a
	b.Command = []string{"a"}
	if !a.Equal(&b) {
		t.Error("equal steps differ")
	}
	b.Command = []string{"b"}
	if a.Equal(&b) {
		t.Error("different steps equal")
	}
}

func TestParseSignal(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "15": syscall.SIGTERM, "term": syscall.SIGTERM,
		"sigkill": syscall.SIGKILL, "HUP": syscall.SIGHUP, " INT ": syscall.SIGINT, "USR2": syscall.SIGUSR2,
		"64": syscall.Signal(64), "1": syscall.SIGHUP,
	}
	for in, want := range good {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "TERMINATE", "0", "65", "-1", "SIG", "15x"} {
		if _, err := ParseSignal(in); !errors.Is(err, ErrBadSignal) {
			t.Errorf("ParseSignal(%q) error = %v, want ErrBadSignal", in, err)
		}
	}
}

func TestSignalName(t *testing.T) {
	for sig := syscall.Signal(1); sig <= maxSignal; sig++ {
		name := SignalName(sig)
		back, err := ParseSignal(name)
		if err != nil || back != sig {
			t.Errorf("ParseSignal(SignalName(%d) = %q) = %v, %v", int(sig), name, back, err)
		}
	}
	if SignalName(syscall.SIGTERM) != "SIGTERM" {
		t.Errorf("SignalName(SIGTERM) = %q", SignalName(syscall.SIGTERM))
	}
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{File: "f.toml", Line: 3, Program: "programs.a", Msg: "m"}, "f.toml:3: programs.a: m"},
		{Error{File: "f.toml", Program: "supervisor", Msg: "m"}, "f.toml: supervisor: m"},
		{Error{Line: 3, Msg: "m"}, "line 3: m"},
		{Error{Program: "programs.main", Msg: "m"}, "programs.main: m"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	cases := map[string]string{
		"comand":       "command",
		"Command":      "command",
		"log-level":    "log_level",
		"stop_sginal":  "stop_signal",
		"xyz":          "",
		"environement": "environment",
		"a":            "",
	}
	for in, want := range cases {
		got := suggest(in, append(programKeys.names(), supervisorKeys.names()...))
		if want == "" && got != "" || want != "" && got != ` (did you mean "`+want+`"?)` {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScanLines(t *testing.T) {
	src := `# comment [not.a.table]
top = 1
[a]
x = """multi
y = 2
"""
"quoted.key" = 'v'
dotted.inner . deep = 3
arr = [
  1, # comment ]
  "]",
  { z = 4 },
]
after = { q = [1, 2] }
[ "b" . 'c' ]
k = "a#b" # trailing
[[d]]
e = 5
broken line without equals
f = 6
`
	ix := scanLines([]byte(src))
	cases := []struct {
		path []string
		want int
	}{
		{[]string{"top"}, 2},
		{[]string{"a"}, 3},
		{[]string{"a", "x"}, 4},
		{[]string{"a", "y"}, 3}, // inside a string: not a key, falls back to [a]
		{[]string{"a", "quoted.key"}, 7},
		{[]string{"a", "dotted", "inner", "deep"}, 8},
		{[]string{"a", "dotted", "inner"}, 8},
		{[]string{"a", "arr"}, 9},
		{[]string{"a", "z"}, 3},
		{[]string{"a", "after"}, 14},
		{[]string{"a", "after", "q"}, 14},
		{[]string{"b", "c"}, 15},
		{[]string{"b"}, 15},
		{[]string{"b", "c", "k"}, 16},
		{[]string{"d", "e"}, 18},
		{[]string{"d", "f"}, 20},
		{[]string{"nope"}, 0},
	}
	for _, c := range cases {
		if got := ix.line(c.path...); got != c.want {
			t.Errorf("line(%q) = %d, want %d", c.path, got, c.want)
		}
	}
}

func TestScanLinesGarbage(t *testing.T) {
	for _, src := range []string{`"`, `[`, `a = "\`, `a = """`, `[a."b`, "a = '''x", `x = "\u12`, `= 1`, `a.=`, "\"\\"} {
		scanLines([]byte(src)) // must not panic
	}
}

func TestSummary(t *testing.T) {
	c := mustParse(t, `
[programs.db]
command = ["/bin/db", "-x"]
[programs.web]
command = "run web"
autostart = false
critical = true
depends_on = ["db"]
notify = true
watchdog = { heartbeat_file = "/run/w", timeout = 5 }`)
	cases := map[string]string{
		"db":  "db: /bin/db -x (restart on-failure, breaker 5/1m)",
		"web": "web: /bin/sh -c run web (no autostart, depends on db, restart on-failure, critical, notify, breaker 5/1m, watchdog 5s on /run/w)",
	}
	for name, want := range cases {
		if got := c.Programs[name].Summary(); got != want {
			t.Errorf("Summary() = %q, want %q", got, want)
		}
	}
}
