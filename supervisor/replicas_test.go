package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

func (h *harness) scale(name string, n int) control.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.sup.Handle(ctx, control.Request{Command: control.CmdScale, Names: []string{name},
		Params: map[string]string{control.ParamCount: strconv.Itoa(n)}})
}

// pids returns the pid of every program the status of names shows.
func (h *harness) pids(names ...string) map[string]int {
	h.t.Helper()
	r := h.ctl(control.CmdStatus, names...)
	if !r.OK {
		h.t.Fatalf("status %q: %+v", names, r)
	}
	out := map[string]int{}
	for _, p := range r.Programs {
		out[p.Name] = p.PID
	}
	return out
}

func (h *harness) names(names ...string) []string {
	h.t.Helper()
	var out []string
	for _, p := range h.ctl(control.CmdStatus, names...).Programs {
		out = append(out, p.Name)
	}
	return out
}

// allRunning waits until the status of names shows exactly want, every
// one running with a pid, and returns their pids.
func (h *harness) allRunning(want []string, names ...string) map[string]int {
	h.t.Helper()
	var got map[string]int
	h.waitFor(fmt.Sprintf("%q running", want), func() bool {
		r := h.ctl(control.CmdStatus, names...)
		got = map[string]int{}
		for _, p := range r.Programs {
			if p.State != "running" || p.PID == 0 {
				return false
			}
			got[p.Name] = p.PID
		}
		return len(got) == len(want) && slices.Equal(h.names(names...), want)
	})
	return got
}

// Each instance is a process of its own, with its templates replaced and
// its identity in its environment; status lists a program's instances by
// index, with their program and replica.
func TestReplicasRunAsInstances(t *testing.T) {
	h := startSup(t, `
[programs.db]
command = ["/bin/sh", "-c", "echo $SUPERVISE_PROGRAM/$SUPERVISE_REPLICA/$SUPERVISE_INSTANCE > $DIR/db.env; exec sleep 1000"]
[programs.web]
replicas = 3
command = ["/bin/sh", "-c", "echo $PORT $SUPERVISE_PROGRAM/$SUPERVISE_REPLICA/$SUPERVISE_INSTANCE {name} > $DIR/web-{replica}.env; exec sleep 1000"]
environment = { PORT = "80{replica}", SUPERVISE_REPLICA = "overridden" }
clear_environment = true
[programs.off]
command = ["/bin/sleep", "1000"]
replicas = 0
`, nil)
	pids := h.allRunning([]string{"db", "web:0", "web:1", "web:2"})
	if len(map[int]bool{pids["web:0"]: true, pids["web:1"]: true, pids["web:2"]: true}) != 3 {
		t.Fatalf("instances share a process: %v", pids)
	}
	for i := range 3 {
		path := filepath.Join(h.dir, fmt.Sprintf("web-%d.env", i))
		want := fmt.Sprintf("80%d web/%d/web:%d web:%d\n", i, i, i, i)
		h.waitFor(path, func() bool { b, _ := os.ReadFile(path); return string(b) == want })
	}
	dbEnv := filepath.Join(h.dir, "db.env")
	h.waitFor("db.env", func() bool { b, _ := os.ReadFile(dbEnv); return string(b) == "db/0/db\n" })

	r := h.ctl(control.CmdStatus, "web")
	if !r.OK || len(r.Programs) != 3 {
		t.Fatalf("status web: %+v", r)
	}
	for i, p := range r.Programs {
		if p.Name != fmt.Sprintf("web:%d", i) || p.Program != "web" || p.Replica != i {
			t.Errorf("row %d: name %q program %q replica %d", i, p.Name, p.Program, p.Replica)
		}
	}
	if st := h.status("db"); st.Program != "db" || st.Replica != 0 {
		t.Errorf("db row: program %q replica %d", st.Program, st.Replica)
	}
	// A program with replicas = 0 is known and shows nothing.
	if r := h.ctl(control.CmdStatus, "off"); !r.OK || len(r.Programs) != 0 {
		t.Errorf("status off: %+v", r)
	}
	if r := h.ctl(control.CmdStart, "off"); r.OK || !strings.Contains(r.Error, "no instance to act on") {
		t.Errorf("start off: %+v", r)
	}
	for name, want := range map[string]string{
		"web:3":  `no instance "web:3": web has 3 (web:0, web:1, web:2)`,
		"db:0":   `no instance "db:0": db has no replicas, name it "db"`,
		"nope":   `no program named "nope" (programs: db, web, off)`,
		"nope:1": `no program named "nope:1"`,
	} {
		if r := h.ctl(control.CmdStatus, name); r.OK || !strings.Contains(r.Error, want) {
			t.Errorf("status %s: %+v, want %q", name, r, want)
		}
	}
	// status web:2 web:0 web web: each once, by index.
	if got := h.names("web:2", "db", "web:0", "web"); !slices.Equal(got, []string{"db", "web:0", "web:1", "web:2"}) {
		t.Errorf("status web:2 db web:0 web = %q", got)
	}
}

// NAME acts on every instance, NAME:i on one.
func TestReplicasControlNames(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 3
command = ["/bin/sleep", "1000"]
stop_timeout = "2s"
`, nil)
	before := h.allRunning([]string{"web:0", "web:1", "web:2"})
	r := h.ctl(control.CmdStop, "web:1")
	if !r.OK || len(r.Results) != 1 || r.Results[0].Name != "web:1" {
		t.Fatalf("stop web:1: %+v", r)
	}
	if st := h.status("web:1"); st.State != "stopped" || st.PID != 0 {
		t.Fatalf("web:1 after stop: %+v", st)
	}
	if p := h.pids("web:0", "web:2"); p["web:0"] != before["web:0"] || p["web:2"] != before["web:2"] {
		t.Fatalf("stop web:1 touched the others: %v then %v", before, p)
	}
	r = h.ctl(control.CmdRestart, "web")
	if !r.OK || len(r.Results) != 3 {
		t.Fatalf("restart web: %+v", r)
	}
	after := h.allRunning([]string{"web:0", "web:1", "web:2"})
	for _, n := range []string{"web:0", "web:2"} {
		if after[n] == before[n] {
			t.Errorf("restart web left %s with pid %d", n, after[n])
		}
	}
	r = h.ctl(control.CmdStop, "web")
	if !r.OK || len(r.Results) != 3 || len(r.Programs) != 3 {
		t.Fatalf("stop web: %+v", r)
	}
	for _, p := range r.Programs {
		if p.State != "stopped" {
			t.Errorf("%s after stop web: %s", p.Name, p.State)
		}
	}
	if r := h.ctl(control.CmdStart, "web:2"); !r.OK {
		t.Fatalf("start web:2: %+v", r)
	}
	h.allRunning([]string{"web:2"}, "web:2")
	if st := h.status("web:0"); st.State != "stopped" {
		t.Errorf("start web:2 started web:0: %+v", st)
	}
}

// scale starts new indices and stops the highest ones; the others keep
// their processes.
func TestScale(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 2
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo {replica} > $DIR/up-{replica}; while :; do sleep 0.02; done"]
[programs.plain]
command = ["/bin/sleep", "1000"]
[programs.shared]
replicas = 1
command = ["/bin/sleep", "1000"]
stdout = "$DIR/shared.log"
`, nil)
	before := h.allRunning([]string{"web:0", "web:1"}, "web")
	r := h.scale("web", 4)
	if !r.OK || r.Message != "web: 4 instances (was 2)" || len(r.Programs) != 4 {
		t.Fatalf("scale web 4: %+v", r)
	}
	up := h.allRunning([]string{"web:0", "web:1", "web:2", "web:3"}, "web")
	if up["web:0"] != before["web:0"] || up["web:1"] != before["web:1"] {
		t.Fatalf("scaling up restarted survivors: %v then %v", before, up)
	}
	h.waitFor("web:3 with its own templates", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "up-3"))
		return string(b) == "3\n"
	})
	r = h.scale("web", 1)
	if !r.OK || r.Message != "web: 1 instance (was 4)" {
		t.Fatalf("scale web 1: %+v", r)
	}
	// The answer comes once the stopped instances have ended and gone.
	if len(r.Programs) != 1 || r.Programs[0].Name != "web:0" || r.Programs[0].PID != before["web:0"] {
		t.Fatalf("scale web 1 answered with %+v", r.Programs)
	}
	for _, n := range []string{"web:1", "web:2", "web:3"} {
		if !gonePID(up[n]) {
			t.Errorf("%s (pid %d) still runs after scale down", n, up[n])
		}
	}
	if got := h.names(); !slices.Equal(got, []string{"web:0", "plain", "shared:0"}) {
		t.Errorf("programs after scale down: %q", got)
	}
	if r := h.scale("web", 1); !r.OK || r.Message != "web: 1 instance" {
		t.Errorf("scale to the same count: %+v", r)
	}
	r = h.scale("web", 0)
	if !r.OK || len(r.Programs) != 0 || !gonePID(before["web:0"]) {
		t.Fatalf("scale web 0: %+v", r)
	}
	if r := h.scale("web", 2); !r.OK {
		t.Fatalf("scale web 2 from 0: %+v", r)
	}
	h.allRunning([]string{"web:0", "web:1"}, "web")

	for _, tt := range []struct {
		name string
		n    int
		want string
	}{
		{"web:0", 3, "scale takes a program, not one instance: supervise scale web N"},
		{"plain", 2, "programs.plain: no replicas setting, so it runs as one instance: set replicas in [programs.plain] to scale it"},
		{"shared", 2, `programs.shared: key "stdout": with 2 replicas every instance would use ` + h.dir + "/shared.log"},
		{"web", 10001, "10001 replicas: must be between 0 and 10000"},
		{"nope", 1, `no program named "nope"`},
	} {
		if r := h.scale(tt.name, tt.n); r.OK || !strings.Contains(r.Error, tt.want) {
			t.Errorf("scale %s %d: %+v, want %q", tt.name, tt.n, r, tt.want)
		}
	}
}

func gonePID(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// writeConfig replaces the harness's file, for a reload.
func (h *harness) writeConfig(toml string) {
	h.t.Helper()
	path := filepath.Join(h.dir, "supervise.toml")
	tmp := path + ".tmp"
	toml = strings.ReplaceAll(toml, "$DIR", h.dir)
	if err := os.WriteFile(tmp, []byte("[supervisor]\nsocket = \"off\"\nwatch_config = false\n"+toml), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		h.t.Fatal(err)
	}
}

// A reload that changes only replicas starts or stops the difference and
// leaves the others alone; one after a scale applies the file's count.
func TestReloadChangesOnlyTheCount(t *testing.T) {
	const prog = `
[programs.web]
command = ["/bin/sleep", "1000"]
replicas = %d
`
	h := startSup(t, fmt.Sprintf(prog, 2), nil)
	before := h.allRunning([]string{"web:0", "web:1"})
	h.writeConfig(fmt.Sprintf(prog, 4))
	r := h.ctl(control.CmdReload)
	if !r.OK || r.Message != "added web:2, web:3" {
		t.Fatalf("reload to 4: %+v", r)
	}
	up := h.allRunning([]string{"web:0", "web:1", "web:2", "web:3"})
	if up["web:0"] != before["web:0"] || up["web:1"] != before["web:1"] {
		t.Fatalf("survivors restarted: %v then %v", before, up)
	}
	h.writeConfig(fmt.Sprintf(prog, 3))
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "removed web:3" {
		t.Fatalf("reload to 3: %+v", r)
	}
	h.waitFor("web:3 gone", func() bool { return slices.Equal(h.names(), []string{"web:0", "web:1", "web:2"}) })
	if p := h.pids(); p["web:0"] != before["web:0"] || p["web:2"] != up["web:2"] {
		t.Fatalf("survivors restarted: %v then %v", up, p)
	}
	// After a scale, a reload applies the file's count again.
	if r := h.scale("web", 6); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	h.allRunning([]string{"web:0", "web:1", "web:2", "web:3", "web:4", "web:5"})
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "removed web:3 to web:5" {
		t.Fatalf("reload after scale: %+v", r)
	}
	h.waitFor("back to 3", func() bool { return slices.Equal(h.names(), []string{"web:0", "web:1", "web:2"}) })
	if p := h.pids(); p["web:0"] != before["web:0"] {
		t.Fatalf("web:0 restarted by the reload after the scale: %v", p)
	}
	// From 3 to none and back.
	h.writeConfig(fmt.Sprintf(prog, 0))
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "removed web:0 to web:2" {
		t.Fatalf("reload to 0: %+v", r)
	}
	h.waitFor("none left", func() bool { return len(h.names()) == 0 })
}

// Any other change restarts every instance, one at a time: the next one
// stops only once the previous runs again, ready, with the new settings.
func TestReloadRestartsInstancesOneAtATime(t *testing.T) {
	const prog = `
[programs.web]
replicas = 3
command = ["/bin/sh", "-c", "echo %s {replica} >> $DIR/starts; sleep 0.3; echo ready {replica} >> $DIR/starts; touch $DIR/hb-{replica}; trap 'echo stop {replica} >> $DIR/starts; exit 0' TERM; while :; do sleep 0.02; done"]
watchdog = { heartbeat_file = "$DIR/hb-{replica}", timeout = "60s" }
`
	h := startSup(t, fmt.Sprintf(prog, "v1"), nil)
	before := h.allRunning([]string{"web:0", "web:1", "web:2"})
	h.writeConfig(fmt.Sprintf(prog, "v2"))
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "changed web:0 to web:2" {
		t.Fatalf("reload: %+v", r)
	}
	h.waitFor("every instance restarted", func() bool {
		p := h.allRunning([]string{"web:0", "web:1", "web:2"})
		return p["web:0"] != before["web:0"] && p["web:1"] != before["web:1"] && p["web:2"] != before["web:2"]
	})
	b, _ := os.ReadFile(filepath.Join(h.dir, "starts"))
	seq := strings.Split(strings.TrimSpace(string(b)), "\n")
	// Three v1 starts and readiness, then per instance: its stop, its v2
	// start, its readiness; only then the next one's stop.
	want := "stop 0, v2 0, ready 0, stop 1, v2 1, ready 1, stop 2, v2 2, ready 2"
	if len(seq) != 15 || strings.Join(seq[6:], ", ") != want {
		t.Fatalf("start/stop sequence %q, want 6 lines of v1, then %s", seq, want)
	}
	if !strings.Contains(h.dump(), "restarting the instances one at a time") {
		t.Error("the rolling restart is not logged")
	}
}

// New settings that never work stop the roll at the first instance: the
// others keep running with the old ones.
func TestRollingRestartStopsAtABrokenInstance(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 3
command = ["/bin/sleep", "1000"]
`, nil)
	before := h.allRunning([]string{"web:0", "web:1", "web:2"})
	h.writeConfig(`
[programs.web]
replicas = 3
command = ["/nonexistent/web"]
backoff_initial = "10ms"
backoff_max = "10ms"
breaker = { max_failures = 2, reset_timeout = "1h" }
`)
	if r := h.ctl(control.CmdReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.waitFor("web:0 open", func() bool { return h.status("web:0").State == "open" })
	if p := h.pids("web:1", "web:2"); p["web:1"] != before["web:1"] || p["web:2"] != before["web:2"] {
		t.Fatalf("the roll went on past a broken instance: %v then %v", before, p)
	}
	if !strings.Contains(h.dump(), "the other instances keep theirs until the next reload") {
		t.Errorf("the stopped roll is not logged:\n%s", h.dump())
	}
}

// depends_on = ["web"] waits for every instance; ["web:0"] for that one.
func TestDependsOnInstances(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 3
command = ["/bin/sh", "-c", "while [ ! -e $DIR/go-{replica} ]; do sleep 0.02; done; touch $DIR/hb-{replica}; exec sleep 1000"]
watchdog = { heartbeat_file = "$DIR/hb-{replica}", timeout = "60s" }
[programs.all]
command = ["/bin/sleep", "1000"]
depends_on = ["web"]
[programs.first]
command = ["/bin/sleep", "1000"]
depends_on = ["web:0"]
`, nil)
	h.waitFor("dependents waiting", func() bool {
		return h.status("all").State == "waiting" && h.status("first").State == "waiting"
	})
	touch := func(i int) {
		if err := os.WriteFile(filepath.Join(h.dir, fmt.Sprintf("go-%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch(0)
	h.allRunning([]string{"first"}, "first")
	if st := h.status("all"); st.State != "waiting" || !slices.Equal(st.WaitingFor, []string{"web"}) {
		t.Fatalf("all with one instance ready: %+v", st)
	}
	touch(2)
	h.allRunning([]string{"web:2"}, "web:2")
	if st := h.status("all"); st.State != "waiting" {
		t.Fatalf("all with web:1 not ready: %+v", st)
	}
	touch(1)
	h.allRunning([]string{"all"}, "all")
}

// The instances share their program's stop_priority and stop together;
// a dependent stops before all of them.
func TestTeardownStopsInstancesInParallel(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 4
command = ["/bin/sh", "-c", "trap 'sleep 0.5; echo web >> $DIR/order; exit 0' TERM; touch $DIR/up-{replica}; while :; do sleep 0.02; done"]
stop_priority = 10
[programs.client]
command = ["/bin/sh", "-c", "trap 'echo client >> $DIR/order; exit 0' TERM; touch $DIR/up-client; while :; do sleep 0.02; done"]
stop_priority = 10
depends_on = ["web"]
`, nil)
	for _, n := range []string{"0", "1", "2", "3", "client"} {
		path := filepath.Join(h.dir, "up-"+n)
		h.waitFor(path, func() bool { _, err := os.Stat(path); return err == nil })
	}
	start := time.Now()
	h.sup.Shutdown("test", 0)
	if code := h.exitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	took := time.Since(start)
	b, _ := os.ReadFile(filepath.Join(h.dir, "order"))
	if got := strings.Join(strings.Fields(string(b)), " "); got != "client web web web web" {
		t.Fatalf("teardown order %q", got)
	}
	// Four stops of 0.5 s each in a row would take 2 s.
	if took > 1500*time.Millisecond {
		t.Errorf("teardown took %s: the instances did not stop in parallel", took)
	}
}

// Each instance has its own watchdog: a silent one is restarted alone.
func TestReplicaWatchdogsAreSeparate(t *testing.T) {
	h := startSup(t, `
[programs.web]
replicas = 2
command = ["/bin/sh", "-c", "while [ ! -e $DIR/quiet-{replica} ]; do touch $DIR/hb-{replica}; sleep 0.05; done; exec sleep 1000"]
watchdog = { heartbeat_file = "$DIR/hb-{replica}", timeout = "300ms" }
`, nil)
	before := h.allRunning([]string{"web:0", "web:1"})
	if err := os.WriteFile(filepath.Join(h.dir, "quiet-1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitFor("web:1 restarted by its watchdog", func() bool { return h.status("web:1").Stats.Failures > 0 })
	if st := h.status("web:0"); st.PID != before["web:0"] || st.Stats.Failures != 0 {
		t.Fatalf("web:0 suffered web:1's silence: %+v", st)
	}
}

// Each instance has its own notify socket.
func TestReplicaNotifySockets(t *testing.T) {
	notify, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed")
	}
	h := startSup(t, `
[programs.web]
replicas = 2
notify = true
command = ["/bin/sh", "-c", "echo $NOTIFY_SOCKET > $DIR/sock-{replica}; `+notify+` --ready --status='I am {name}'; exec sleep 1000"]
`, nil)
	h.allRunning([]string{"web:0", "web:1"})
	for i := range 2 {
		name := fmt.Sprintf("web:%d", i)
		h.waitFor(name+" status text", func() bool { return h.status(name).StatusText == "I am "+name })
	}
	a, _ := os.ReadFile(filepath.Join(h.dir, "sock-0"))
	b, _ := os.ReadFile(filepath.Join(h.dir, "sock-1"))
	if len(a) < 2 || string(a) == string(b) {
		t.Fatalf("notify sockets %q and %q", a, b)
	}
}

// Metrics carry the instance beside the program.
func TestReplicaMetricsLabels(t *testing.T) {
	h, addr := startMetrics(t, "[programs.m]\ncommand = [\"/bin/sleep\", \"1000\"]\nreplicas = 2\n", nil)
	h.allRunning([]string{"m:0", "m:1"})
	_, body, _ := fetch(t, "GET", "http://"+addr+"/metrics")
	for _, want := range []string{
		`supervise_program_state{program="m",instance="m:0",state="running"} 1`,
		`supervise_program_up{program="m",instance="m:1"} 1`,
		`supervise_program_restarts_total{program="m",instance="m:0"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `{program="m:`) {
		t.Errorf("an instance is labelled as a program:\n%s", body)
	}
}
