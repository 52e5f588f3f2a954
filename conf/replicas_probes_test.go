package conf

import (
	"slices"
	"strings"
	"testing"
)

// Probe targets of programs with replicas: templated, checked per
// instance.

func TestReplicasProbeTargets(t *testing.T) {
	cfg := mustParse(t, `
[defaults]
stop_timeout = "3s"

[programs.web]
command = ["/bin/web"]
replicas = 3
liveness.tcp = "127.0.0.1:90{replica}"
[programs.web.readiness]
http = "http://127.0.0.1:80{replica}/healthz?who={name}"

[programs.job]
command = ["/bin/job"]
replicas = 2
readiness.exec = ["/bin/check", "--port", "70{replica}", "{name}"]
liveness.exec = "test -e /run/{name}"

[programs.plain]
command = ["/bin/plain"]
readiness.http = "http://localhost:81{replica}/{name}"
`)
	for i, name := range []string{"web:0", "web:1", "web:2"} {
		p := cfg.Programs[name]
		n := string(rune('0' + i))
		if want := "http://127.0.0.1:80" + n + "/healthz?who=" + name; p.Readiness.HTTP != want {
			t.Errorf("%s readiness.http = %q, want %q", name, p.Readiness.HTTP, want)
		}
		if want := "127.0.0.1:90" + n; p.Liveness.TCP != want {
			t.Errorf("%s liveness.tcp = %q, want %q", name, p.Liveness.TCP, want)
		}
	}
	j1 := cfg.Programs["job:1"]
	if want := []string{"/bin/check", "--port", "701", "job:1"}; !slices.Equal(j1.Readiness.Exec, want) {
		t.Errorf("job:1 readiness.exec = %q, want %q", j1.Readiness.Exec, want)
	}
	if want := []string{"/bin/sh", "-c", "test -e /run/job:1"}; !slices.Equal(j1.Liveness.Exec, want) {
		t.Errorf("job:1 liveness.exec = %q, want %q", j1.Liveness.Exec, want)
	}
	// Without replicas, the one instance has index 0 and the plain name.
	if got := cfg.Programs["plain"].Readiness.HTTP; got != "http://localhost:810/plain" {
		t.Errorf("plain readiness.http = %q", got)
	}
	// The definition keeps the templates, and instances share no probe.
	def := cfg.Definitions["web"]
	if def.Readiness.HTTP != "http://127.0.0.1:80{replica}/healthz?who={name}" || def.Liveness.TCP != "127.0.0.1:90{replica}" {
		t.Errorf("definition probes %+v %+v", def.Readiness, def.Liveness)
	}
	cfg.Programs["job:0"].Readiness.Exec[0] = "/changed"
	if j1.Readiness.Exec[0] != "/bin/check" || cfg.Definitions["job"].Readiness.Exec[0] != "/bin/check" {
		t.Error("instances share a probe's argv")
	}
	// Instances of one table differ in their probe targets, which need a
	// restart to change.
	d := cfg.Programs["web:0"].Diff(cfg.Programs["web:1"])
	if !slices.Equal(d, []string{"readiness.http", "liveness.tcp"}) || !NeedsRestart("readiness.http") {
		t.Errorf("web:0 vs web:1 Diff = %q", d)
	}
	// validate names the templated probe targets of each instance.
	if s := cfg.Programs["web:2"].InstanceSummary(def); !strings.Contains(s, "readiness.http http://127.0.0.1:802/healthz?who=web:2") ||
		!strings.Contains(s, "liveness.tcp 127.0.0.1:902") {
		t.Errorf("InstanceSummary = %q", s)
	}
}

func TestReplicasProbeTargetErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"port out of range for one instance", `
[programs.web]
command = ["/bin/web"]
replicas = 7
readiness.http = "http://127.0.0.1:6553{replica}/"
`, []string{`f.toml:5: programs.web: key "readiness.http": invalid URL "http://127.0.0.1:65536/" for web:6 ` +
			`(from "http://127.0.0.1:6553{replica}/"): port "65536" is not a number between 1 and 65535`}},
		{"name in a port", `
[programs.web]
command = ["/bin/web"]
replicas = 2
[programs.web.liveness]
tcp = "127.0.0.1:{name}"
`, []string{`programs.web: key "liveness.tcp": invalid address "127.0.0.1:web:0" for web:0 (from "127.0.0.1:{name}")`}},
		{"from defaults, without replicas", `
[defaults]
readiness.tcp = "localhost:9{replica}{replica}{replica}{replica}{replica}"
[programs.a]
command = ["/bin/a"]
`, []string{`programs.a: key "readiness.tcp": invalid address "localhost:900000" for a (from `}},
		{"a value without templates is checked as written", `
[programs.web]
command = ["/bin/web"]
replicas = 2
readiness.http = "ftp://x/"
`, []string{`programs.web: key "readiness.http": invalid URL "ftp://x/": the scheme must be "http" or "https"`}},
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
	// A scale checks the targets of the new count.
	cfg := mustParse(t, `
[programs.web]
command = ["/bin/web"]
replicas = 3
readiness.http = "http://127.0.0.1:6553{replica}/"
`)
	if _, err := cfg.Definitions["web"].Instances(6); err != nil {
		t.Errorf("Instances(6): %v", err)
	}
	if _, err := cfg.Definitions["web"].Instances(7); err == nil || !strings.Contains(err.Error(),
		`programs.web: key "readiness.http": invalid URL "http://127.0.0.1:65536/" for web:6`) {
		t.Errorf("Instances(7) = %v", err)
	}
	// So does the command given after --, with [defaults]' probe.
	cfg = mustParse(t, "[defaults]\nreadiness.tcp = \"h:{name}\"\n[supervisor]\n")
	if err := cfg.AddCommand([]string{"/bin/true"}); err == nil || !strings.Contains(err.Error(), `invalid address "h:main" for main`) {
		t.Errorf("AddCommand = %v", err)
	}
}
