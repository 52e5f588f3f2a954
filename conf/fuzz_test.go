package conf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that any input gives either a valid config or an
// ErrorList, never a panic, and that a config holds what Parse promises.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.toml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", " \n# only a comment\n", "[supervisor]\n", "[programs.a]\ncommand = 'x'\nready_timeout = 2\n",
		"[programs.a]\ncommand = 'x'\n", "programs.a.command = [\"/a\"]\nprograms.a.depends_on = [\"a\"]",
		"[programs]\na = {command = \"x\", watchdog = {heartbeat_file = \"h\"}}",
		"a = \"\"\"\n[x]\n\"\"\"\n", "[defaults]\nwatchdog = {}\n[programs.a]\ncommand='x'",
		"[programs.a]\ncommand = ['x{replica}']\nreplicas = 3\nwatchdog.heartbeat_file = '/h{name}'\n" +
			"[programs.b]\ncommand = 'y'\ndepends_on = ['a:2']\n",
		"[defaults]\nreplicas = 0\n[programs.a]\ncommand = '{name}'\n",
		"[programs.a]\ncommand='x'\nreadiness = {http = 'http://h:1/', tcp = ':1'}\nliveness = {log_line = 'x'}",
		"[programs.a]\ncommand='x'\nreadiness = {log_line = '(?i)ready'}\n[programs.b]\ncommand='y'\ndepends_on = {a = 'completed'}",
		"[defaults.readiness]\nexec = 'true'\n[programs.a]\ncommand='x'\ndepends_on = {a = 'nope', b = 1}",
		"[programs.a]\ncommand='x'\nreplicas = 2\nreadiness.http = 'http://127.0.0.1:6553{replica}/{name}'\n" +
			"liveness.tcp = '[::1]:80{replica}'\n[programs.b]\ncommand='y'\ndepends_on = {'a:1' = 'started', a = 'ready'}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		scanLines(data)
		cfg, err := Parse("f.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("both a config and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T is not a non-empty ErrorList: %v", err, err)
			}
			_ = err.Error()
			return
		}
		if len(cfg.Order) != len(cfg.Programs) {
			t.Fatalf("Order %v vs %d programs", cfg.Order, len(cfg.Programs))
		}
		// The instances are exactly those of the definitions, and two
		// instances never share a heartbeat file.
		var names []string
		for _, d := range cfg.DefinitionOrder {
			names = append(names, cfg.Definitions[d].InstanceNames(cfg.Definitions[d].Replicas)...)
		}
		if !slices.Equal(names, cfg.Order) {
			t.Fatalf("Order %q, the definitions give %q", cfg.Order, names)
		}
		beats := map[string]string{}
		for _, name := range cfg.Order {
			p := cfg.Programs[name]
			if cfg.Definitions[p.Base] == nil || (p.Replicated && InstanceName(p.Base, p.Replica) != name) {
				t.Fatalf("instance %q of %q replica %d", name, p.Base, p.Replica)
			}
			if w := p.Watchdog; w != nil {
				if other, ok := beats[w.HeartbeatFile]; ok && cfg.Programs[other].Base == p.Base {
					t.Fatalf("%s and %s share %s", other, name, w.HeartbeatFile)
				}
				beats[w.HeartbeatFile] = name
			}
		}
		for _, name := range cfg.Order {
			p := cfg.Programs[name]
			if p == nil || len(p.Command) == 0 || p.Command[0] == "" || p.Environment == nil {
				t.Fatalf("program %q invalid: %+v", name, p)
			}
			if p.BackoffMax < p.BackoffInitial || p.StopTimeout <= 0 || p.Breaker.MaxFailures < 1 {
				t.Fatalf("program %q out of range: %+v", name, p)
			}
			if p.Watchdog != nil && (p.Watchdog.HeartbeatFile == "" || p.Watchdog.StartGrace <= 0) {
				t.Fatalf("program %q watchdog %+v", name, p.Watchdog)
			}
			for _, pr := range []*Probe{p.Readiness, p.Liveness} {
				if pr != nil && (pr.Kind() == "" || pr.Interval <= 0 || pr.Timeout <= 0 ||
					pr.SuccessThreshold < 1 || pr.FailureThreshold < 1) {
					t.Fatalf("program %q probe %+v", name, pr)
				}
			}
			if p.Liveness != nil && (p.Liveness.Kind() == ProbeLogLine || p.Liveness.Action == "") {
				t.Fatalf("program %q liveness %+v", name, p.Liveness)
			}
			for _, d := range p.DependsOn {
				// A program, or one instance of another program.
				base, _, _ := SplitInstance(d.Name)
				if cfg.Definitions[d.Name] == nil && cfg.Programs[d.Name] == nil || base == p.Base || d.Condition == "" {
					t.Fatalf("program %q dependency %+v", name, d)
				}
			}
			if !p.Equal(p) || len(p.Diff(p)) != 0 {
				t.Fatalf("program %q not Equal to itself: %q", name, p.Diff(p))
			}
			if s := p.Summary(); !strings.HasPrefix(s, name+": ") {
				t.Fatalf("program %q Summary %q", name, s)
			}
		}
		for _, s := range cfg.Teardown {
			if len(s.Command) == 0 || s.Timeout <= 0 {
				t.Fatalf("teardown %+v", s)
			}
		}
	})
}

// FuzzSplitInstance checks that an instance name splits into a program
// and an index that give it back, and that anything else is left whole.
func FuzzSplitInstance(f *testing.F) {
	for _, s := range []string{"web:0", "web:12", "web", "web:", ":1", "web:01", "a:b:1", "web:999999999", "web:-0", "x:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		base, i, ok := SplitInstance(name)
		if !ok {
			if base != name || i != 0 {
				t.Fatalf("SplitInstance(%q) = %q, %d, false", name, base, i)
			}
			return
		}
		if i < 0 || base == "" || InstanceName(base, i) != name {
			t.Fatalf("SplitInstance(%q) = %q, %d: InstanceName gives %q", name, base, i, InstanceName(base, i))
		}
	})
}
