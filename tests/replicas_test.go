package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// instances returns the rows of status --json for NAME..., keyed by name.
func (s *sup) instances(t *testing.T, names ...string) map[string]control.ProgramStatus {
	t.Helper()
	r := s.ctl(t, append([]string{"status", "--json"}, names...)...)
	if r.code != 0 {
		t.Fatalf("status --json %v: %s", names, r)
	}
	var doc struct {
		Programs []control.ProgramStatus `json:"programs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]control.ProgramStatus{}
	for _, p := range doc.Programs {
		out[p.Name] = p
	}
	return out
}

// allRunning waits until every name runs with a pid, and returns the pids.
func (s *sup) allRunning(t *testing.T, names ...string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	for _, n := range names {
		pids[n] = s.running(t, n).PID
	}
	return pids
}

// The command line: status groups the instances, --json has program and
// replica, NAME:i names one instance, scale changes the count, and an
// edit of replicas alone leaves the surviving instances alone.
func TestReplicasFromTheCommandLine(t *testing.T) {
	t.Parallel()
	prog := func(n int) string {
		return fmt.Sprintf(`
[programs.db]
command = ["/bin/sleep", "1000"]

[programs.web]
command = ["/bin/sh", "-c", "echo $SUPERVISE_INSTANCE > {name}.id; exec sleep 1000"]
replicas = %d
`, n)
	}
	c := config{programs: prog(3)}
	s := newSup(t, c)
	before := s.allRunning(t, "db", "web:0", "web:1", "web:2")
	if b := waitFile(t, filepath.Join(s.dir, "web:1.id"), nil); b != "web:1\n" {
		t.Errorf("web:1 wrote %q", b)
	}

	r := s.ctl(t, "status")
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "NAME ") || !strings.HasPrefix(lines[1], "db ") ||
		strings.Join(strings.Fields(lines[2]), " ") != "web 3 running" ||
		!strings.HasPrefix(lines[3], "  web:0 ") || !strings.HasPrefix(lines[5], "  web:2 ") {
		t.Fatalf("status table:\n%s", r.stdout)
	}
	// Columns line up across programs and instances.
	if i := strings.Index(lines[1], "running"); i < 0 || strings.Index(lines[3], "running") != i {
		t.Errorf("columns do not line up:\n%s", r.stdout)
	}

	rows := s.instances(t, "web")
	if len(rows) != 3 {
		t.Fatalf("status --json web: %v", rows)
	}
	for i := range 3 {
		p := rows[fmt.Sprintf("web:%d", i)]
		if p.Program != "web" || p.Replica != i || p.PID != before[p.Name] {
			t.Errorf("row web:%d = %s", i, describe(p))
		}
	}
	var raw struct {
		Programs []map[string]any `json:"programs"`
	}
	json.Unmarshal([]byte(s.ctl(t, "status", "--json", "db").stdout), &raw)
	if len(raw.Programs) != 1 || raw.Programs[0]["program"] != "db" || raw.Programs[0]["replica"] != 0.0 {
		t.Errorf("db's JSON row: %v", raw.Programs)
	}

	if r := s.ctl(t, "stop", "web:1"); r.code != 0 {
		t.Fatalf("stop web:1: %s", r)
	}
	if p := s.prog(t, "web:1"); p.State != "stopped" {
		t.Fatalf("web:1: %s", describe(p))
	}
	if r := s.ctl(t, "start", "web"); r.code != 0 {
		t.Fatalf("start web: %s", r)
	}
	before["web:1"] = s.running(t, "web:1").PID

	r = s.ctl(t, "scale", "web", "5")
	if r.code != 0 || r.stdout != "web: 5 instances (was 3)\n" {
		t.Fatalf("scale web 5: %s", r)
	}
	up := s.allRunning(t, "web:0", "web:1", "web:2", "web:3", "web:4")
	for _, n := range []string{"web:0", "web:1", "web:2"} {
		if up[n] != before[n] {
			t.Errorf("scale up restarted %s: pid %d then %d", n, before[n], up[n])
		}
	}
	r = s.ctl(t, "scale", "web", "2")
	if r.code != 0 || r.stdout != "web: 2 instances (was 5)\n" {
		t.Fatalf("scale web 2: %s", r)
	}
	// It answers once the stopped instances are gone.
	for _, n := range []string{"web:2", "web:3", "web:4"} {
		if !gone(up[n]) {
			t.Errorf("%s (pid %d) still runs after scale web 2 answered", n, up[n])
		}
	}
	if rows := s.instances(t, "web"); len(rows) != 2 || rows["web:1"].PID != before["web:1"] {
		t.Errorf("after scale web 2: %v", rows)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"scale", "web:0", "2"}, "scale takes a program, not one instance"},
		{[]string{"scale", "db", "2"}, "no replicas setting"},
		{[]string{"scale", "web", "many"}, `invalid number "many"`},
		{[]string{"stop", "web:7"}, `no instance "web:7": web has 2 (web:0, web:1)`},
	} {
		if r := s.ctl(t, tt.args...); r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: %s, want %q on stderr", tt.args, r, tt.want)
		}
	}

	// An edit of replicas alone: the file's count, survivors untouched.
	c.programs = prog(4)
	s.writeConfig(t, c)
	now := s.allRunning(t, "db", "web:0", "web:1", "web:2", "web:3")
	for _, n := range []string{"db", "web:0", "web:1"} {
		if now[n] != before[n] {
			t.Errorf("the edit of replicas restarted %s: pid %d then %d", n, before[n], now[n])
		}
	}
}

// freePrefix finds a port prefix P such that P0 ... P(n-1) are free.
func freePrefix(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		p := 2000 + rand.IntN(4000) // ports 20000 to 59999
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d%d", p, i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free ports")
	return 0
}

// The README's example: a port per instance, from the template in the
// environment, each instance a server of its own.
func TestReplicasPortPerInstance(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	prefix := freePrefix(t, 3)
	server := `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["SUPERVISE_INSTANCE"].encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`
	c := config{programs: fmt.Sprintf(`
[programs.web]
command = [%s, "-c", %s]
replicas = 3
environment = { PORT = "%d{replica}" }
`, q(py), q(server), prefix)}
	s := newSup(t, c)
	s.allRunning(t, "web:0", "web:1", "web:2")
	for i := range 3 {
		url := fmt.Sprintf("http://127.0.0.1:%d%d/", prefix, i)
		want := fmt.Sprintf("web:%d", i)
		waitFor(t, url, waitDefault, func() (bool, string) {
			resp, err := http.Get(url)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b := make([]byte, 64)
			n, _ := resp.Body.Read(b)
			return string(b[:n]) == want, string(b[:n])
		})
	}
}

// buildPlain builds supervise without the race detector, whose shadow
// memory would swamp a measurement of the supervisor's own.
func buildPlain(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "supervise")
	build := exec.Command("go", "build", "-o", bin, "./cmd/supervise")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building supervise: %v: %s", err, out)
	}
	return bin
}

// pss is the proportional set size of pid in kB (/proc/PID/smaps_rollup).
func pss(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Skipf("no smaps_rollup: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no Pss line in smaps_rollup of %d", pid)
	return 0
}

// The supervisor's memory for an instance stays within 10 % of what a
// separate program costs it: PSS of a supervisor running N instances of
// one program, and N programs, each less that of one running none.
func TestReplicaMemoryPerInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary without the race detector")
	}
	binPlain := buildPlain(t)
	const n = 200
	measure := func(programs string) int {
		dir := shortDir(t)
		cfg := filepath.Join(dir, "supervise.toml")
		os.WriteFile(cfg, []byte("[supervisor]\nsocket = \"off\"\nwatch_config = false\n"+programs), 0o644)
		cmd := exec.Command(binPlain, "run", "-c", cfg)
		cmd.Env = childEnv()
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		}()
		// Settled: every program spawned (its sleep is a child), the
		// start-up garbage returned.
		want := strings.Count(programs, "/bin/sleep")
		if strings.Contains(programs, "replicas") {
			want = n
		}
		waitFor(t, fmt.Sprintf("%d children", want), 30*time.Second, func() (bool, string) {
			// Each thread lists the children it forked.
			files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
			got := 0
			for _, f := range files {
				b, _ := os.ReadFile(f)
				got += len(strings.Fields(string(b)))
			}
			return got == want, fmt.Sprintf("%d children", got)
		})
		time.Sleep(time.Second)
		return pss(t, cmd.Process.Pid)
	}
	var separate strings.Builder
	for i := range n {
		fmt.Fprintf(&separate, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\n", i)
	}
	replicated := fmt.Sprintf("[programs.p]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\nreplicas = %d\n", n)
	base := measure("")
	sep := measure(separate.String())
	rep := measure(replicated)
	perSep := float64(sep-base) / n
	perRep := float64(rep-base) / n
	t.Logf("PSS: %d kB with no program, %d kB with %d programs (%.1f kB each), %d kB with %d instances (%.1f kB each)",
		base, sep, n, perSep, rep, n, perRep)
	if perSep <= 0 || perRep > 1.1*perSep {
		t.Errorf("an instance costs %.1f kB, a separate program %.1f kB: more than 10 %% apart", perRep, perSep)
	}
}
