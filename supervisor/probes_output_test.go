package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/probe"
)

// TestLogLineProbeSeesDroppedLines drives a run's outputs as the output
// reader does: the log_line probe sees a line log_rate drops, and when it
// passes the kept lines already hold what came before it in the read
// round, though the round has not ended.
func TestLogLineProbeSeesDroppedLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "supervise.toml")
	text := `
[programs.srv]
command = ["/bin/true"]
log_rate = 1
log_burst = 1
readiness = { log_line = "^ready" }
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	s, err := New(Options{Config: cfg, Reaper: reaper, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = cfg
	p := s.newProgram(cfg.Programs["srv"])
	r := &run{n: 1}
	if _, err := attachProbes(s, p, r, new([]string)); err != nil || r.lines == nil {
		t.Fatalf("attachProbes: %v, matcher %v", err, r.lines)
	}
	r.limiter = s.newLimiter(p)
	defer r.limiter.finish()
	out := matchLines(s.output(p, r, "stdout", cfg.Programs["srv"].Stdout), r.lines)
	if out.Kind != procs.Lines {
		t.Fatalf("output kind %v", out.Kind)
	}
	out.OnLine([]byte("booting"), false)   // kept: the burst
	out.OnLine([]byte("ready now"), false) // dropped above log_rate
	var ev *probed
	for _, e := range s.box.drain() {
		if pe, ok := e.(probed); ok {
			ev = &pe
		}
	}
	if ev == nil || ev.to != probe.Passing || ev.line != "ready now" {
		t.Fatalf("probe event %+v, want passing on the dropped line", ev)
	}
	pl := s.out.logs.get("srv")
	var kept []string
	pl.ring.read(0, 10, func(_ uint64, _ int64, _ uint32, line []byte) { kept = append(kept, string(line)) })
	if strings.Join(kept, ",") != "booting" {
		t.Errorf("kept %q, want the line before the match, and not the dropped one", kept)
	}
}

// A log_line probe reads the stream of a rotated file too, which then
// goes through the lines (not the copy path) and still reaches its file.
func TestLogLineReadinessFromOwnedFile(t *testing.T) {
	h := startSup(t, `
[programs.srv]
command = ["/bin/sh", "-c", "echo booting; sleep 0.2; echo 'listening on :8080'; exec sleep 1000"]
stdout = "$DIR/srv.log"
log_max_size = "1MB"
readiness = { log_line = "listening on :\\d+" }
[programs.app]
command = ["/bin/sleep", "1000"]
depends_on = ["srv"]
`, nil)
	h.waitFor("app started", func() bool { return h.status("app").State == "running" })
	if srv := h.status("srv"); !srv.Ready || srv.Probes.Readiness.State != "passing" {
		t.Fatalf("srv %+v", srv)
	}
	h.waitFor("the file", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "srv.log"))
		return string(b) == "booting\nlistening on :8080\n"
	})
}
