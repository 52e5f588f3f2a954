package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newResults() *Results {
	return &Results{Samples: map[string][]float64{}, Texts: map[string][]string{}, Notes: map[string][]string{},
		expect: map[string]bool{}, order: map[string][]string{}, morder: map[string][]string{}, Absent: map[string]string{}}
}

// TestStormRestarts counts the starts inside the window and pairs only the
// exits inside it with the next start.
func TestStormRestarts(t *testing.T) {
	lines := []stampLine{
		{"start", 1, 100, "a"}, {"exit", 1, 900, "a"}, // exit before the window
		{"start", 2, 1100, "a"}, {"exit", 2, 1500, "a"}, {"start", 3, 3500, "a"}, // latency 2000 ns
		{"start", 4, 1200, "b"}, {"exit", 4, 4000, "b"}, {"start", 5, 4100, "b"}, // its restart after the window
	}
	n, lat := stormRestarts(lines, 1000, 4000)
	if n != 3 { // a@1100, b@1200, a@3500
		t.Errorf("restarts %d, want 3", n)
	}
	if len(lat) != 2 || math.Abs(lat[0]+lat[1]-(0.002+0.0001)) > 1e-12 {
		t.Errorf("latencies %v, want 0.002 ms (a) and 0.0001 ms (b)", lat)
	}
}

func TestLostPrograms(t *testing.T) {
	progs := []progSpec{{id: "a"}, {id: "b"}, {id: "c"}}
	lines := []stampLine{{"start", 1, 50, "a"}, {"start", 2, 150, "b"}, {"exit", 3, 150, "c"}, {"start", 3, 100, "c"}}
	got := lostPrograms(lines, progs, 100, 200)
	if strings.Join(got, ",") != "a,c" {
		t.Errorf("lost %v, want a (started before the grace) and c (a start exactly at its opening does not count)", got)
	}
}

func TestStormLife(t *testing.T) {
	lo, hi := 500*time.Millisecond, 1500*time.Millisecond
	if d := stormLife(0, 1000, lo, hi); d != lo {
		t.Errorf("first %v", d)
	}
	if d := stormLife(999, 1000, lo, hi); d >= hi || d < hi-2*time.Millisecond {
		t.Errorf("last %v", d)
	}
}

func TestPM2Status(t *testing.T) {
	out := []byte(`>>>> In-memory PM2 is out-of-date, do:
[{"name":"a","pid":12,"pm2_env":{"status":"online","restart_time":3}},{"name":"b","pm2_env":{"status":"errored","restart_time":16}}]`)
	st, err := pm2Status(out)
	if err != nil {
		t.Fatal(err)
	}
	if st["a"] != "online, 3 restarts" || st["b"] != "errored, 16 restarts" {
		t.Errorf("status %v", st)
	}
	if _, err := pm2Status([]byte("not json")); err == nil {
		t.Error("no error for output without a list")
	}
}

// TestPM2Ecosystem checks the settings written for each kind of program.
func TestPM2Ecosystem(t *testing.T) {
	e := env{dir: t.TempDir(), probe: "/bin/probe", stamps: "/tmp/st"}
	path, err := pm2Ecosystem(e, []progSpec{
		{id: "r", restart: true, args: []string{"-code", "1"}},
		{id: "c", restart: true, crash: true},
		{id: "n"},
		{id: "x", argv: []string{"/bin/x", "y"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var eco struct {
		Apps []map[string]any `json:"apps"`
	}
	if err := json.Unmarshal(b, &eco); err != nil {
		t.Fatal(err)
	}
	if len(eco.Apps) != 4 {
		t.Fatalf("%d apps", len(eco.Apps))
	}
	for _, a := range eco.Apps {
		if a["restart_delay"] != 0.0 || a["interpreter"] != "none" || a["treekill"] != false || a["vizion"] != false ||
			a["out_file"] != "/dev/null" || a["exec_mode"] != "fork" {
			t.Errorf("app %v: not pm2's fastest settings", a)
		}
	}
	r, c, n, x := eco.Apps[0], eco.Apps[1], eco.Apps[2], eco.Apps[3]
	if r["autorestart"] != true || r["max_restarts"] != 1e9 || r["script"] != "/bin/probe" {
		t.Errorf("restarting app %v", r)
	}
	if args := r["args"].([]any); len(args) != 6 || args[0] != "-stamps" || args[5] != "1" {
		t.Errorf("args %v", args)
	}
	if _, ok := c["max_restarts"]; ok || c["autorestart"] != true {
		t.Errorf("crash loop app %v: want pm2's default max_restarts", c)
	}
	if n["autorestart"] != false {
		t.Errorf("non-restarting app %v", n)
	}
	if x["script"] != "/bin/x" || len(x["args"].([]any)) != 1 {
		t.Errorf("argv app %v", x)
	}
}

// TestRunitLayout checks the nested runsvdir groups past 1000 services.
func TestRunitLayout(t *testing.T) {
	e := env{dir: t.TempDir(), probe: "/bin/true", stamps: "/tmp/st"}
	progs := sleepers(runsvdirMax+5, "z")
	scan, dirOf, err := runitLayout(e, progs)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := os.ReadDir(scan)
	if err != nil || len(groups) != 2 {
		t.Fatalf("top scan dir: %v %v, want 2 groups", groups, err)
	}
	for _, g := range groups {
		run, err := os.ReadFile(filepath.Join(scan, g.Name(), "run"))
		if err != nil || !strings.Contains(string(run), "exec runsvdir ") {
			t.Errorf("group %s run: %q %v", g.Name(), run, err)
		}
		if ct, err := os.ReadFile(filepath.Join(scan, g.Name(), "control", "t")); err != nil || !strings.Contains(string(ct), "kill -HUP") {
			t.Errorf("group %s control/t: %q %v", g.Name(), ct, err)
		}
	}
	if len(dirOf) != len(progs) {
		t.Fatalf("%d service dirs for %d programs", len(dirOf), len(progs))
	}
	for _, id := range []string{"z0", "z999", "z1000", "z1004"} {
		if _, err := os.Lstat(filepath.Join(dirOf[id], "run")); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if !strings.Contains(dirOf["z1000"], "group01") || !strings.Contains(dirOf["z999"], "group00") {
		t.Errorf("grouping: %s %s", dirOf["z999"], dirOf["z1000"])
	}
	small, smallDirs, err := runitLayout(env{dir: t.TempDir(), probe: "/bin/true"}, sleepers(3, "s"))
	if err != nil || filepath.Base(small) != "service" || len(smallDirs) != 3 {
		t.Errorf("small layout %s %v %v", small, smallDirs, err)
	}
}

// TestMemoryFit splits PSS into fixed and per-program parts from the idle
// figure's two sizes.
func TestMemoryFit(t *testing.T) {
	h := &harness{r: newResults(), p: fullParams}
	h.r.want("idle100", "a", "pss_mib")
	h.r.want("idle1000", "a", "pss_mib")
	h.r.add("idle100", "a", "pss_mib", 10)    // fixed 9 + 100 × 10 KiB
	h.r.add("idle1000", "a", "pss_mib", 19.0) // fixed 9 + 1000 × 10 KiB
	h.memoryFit()
	per, _ := h.r.Median("memory", "a", "per_prog_kib")
	fixed, _ := h.r.Median("memory", "a", "fixed_mib")
	if math.Abs(per-10.24) > 1e-9 || math.Abs(fixed-9) > 1e-9 {
		t.Errorf("per program %v KiB, fixed %v MiB; want 10.24 KiB and 9 MiB", per, fixed)
	}
	if len(h.r.Notes["memory"]) != 1 || !strings.Contains(h.r.Notes["memory"][0], "N = 100 and 1000") {
		t.Errorf("note %v", h.r.Notes["memory"])
	}
}

// TestDeriveScale checks the growth ratios and the per-program costs.
func TestDeriveScale(t *testing.T) {
	h := &harness{r: newResults(), p: fullParams}
	h.p.scaleNs = []int{100, 1000, 10000}
	for i, n := range []string{"n100", "n1000", "n10000"} {
		v := math.Pow(10, float64(i)) // ×10 per step
		h.r.add("scale_startup", "a", n, v)
		h.r.add("scale_pss", "a", n, 10+v)
		h.r.add("scale_shutdown", "a", n, 100*v)
	}
	h.derive()
	if g, _ := h.r.Median("scale_growth", "a", "startup_10000/1000"); g != 10 {
		t.Errorf("startup growth %v", g)
	}
	if g, _ := h.r.Median("scale_growth", "a", "shutdown_1000/100"); g != 10 {
		t.Errorf("shutdown growth %v", g)
	}
	if v, _ := h.r.Median("scale_perprog", "a", "startup_ms"); math.Abs(v-10) > 1e-9 { // 100 s / 10000
		t.Errorf("startup per program %v ms", v)
	}
	if v, _ := h.r.Median("scale_perprog", "a", "pss_kib"); math.Abs(v-90*1024/9000.0) > 1e-9 {
		t.Errorf("PSS per program %v KiB", v)
	}
	md := h.r.Markdown()
	if !strings.Contains(md, "startup_1000/100 | startup_10000/1000") {
		t.Errorf("growth columns out of order:\n%s", md)
	}
}

const perfScriptSample = `supervise 19822 [000]  7424.047877:       sched:sched_switch: prev_comm=supervise prev_pid=19822 prev_prio=120 prev_state=S ==> next_comm=x next_pid=1 next_prio=120
	ffffffff82267448 __schedule+0x628 ([kernel.kallsyms])
	           7ec97 runtime.usleep.abi0+0x37 (/bin/supervise)
	           54a72 runtime.sysmon+0xb2 (/bin/supervise)
	           4af93 runtime.mstart1+0x93 (/bin/supervise)

supervise 19824 [000]  7424.049389:       sched:sched_switch: prev_comm=supervise prev_pid=19824 prev_prio=120 prev_state=R ==> next_comm=x next_pid=1 next_prio=120
	ffffffff82267448 __schedule+0x628 ([kernel.kallsyms])
	            816e internal/runtime/syscall/linux.Syscall6+0xe (/bin/supervise)

supervise 19822  7424.049849:     250000 cpu-clock/period=250000/: 
	ffffffff813ae453 finish_task_switch.isra.0+0x93 ([kernel.kallsyms])
	           7ec97 runtime.usleep.abi0+0x37 (/bin/supervise)
	           54a72 github.com/supervise/supervise/watch/watchdog.beatStat+0xb2 (/bin/supervise)

supervise 19824 [000]  7424.050432:   syscalls:sys_exit_read: 0x20
supervise 19824 [000]  7424.050433:   syscalls:sys_exit_read: 0xfffffffffffffff5
`

// TestPerfSummary parses perf script's output and sums it per beat.
func TestPerfSummary(t *testing.T) {
	ss := parsePerfScript([]byte(perfScriptSample))
	if len(ss) != 5 {
		t.Fatalf("%d samples: %+v", len(ss), ss)
	}
	if ss[0].tid != 19822 || ss[0].event != "sched:sched_switch" || len(ss[0].frames) != 4 || !ss[0].frames[0].kernel || ss[0].frames[1].kernel {
		t.Errorf("first sample %+v", ss[0])
	}
	if ss[2].event != "cpu-clock" || ss[2].frames[0].sym != "finish_task_switch.isra.0" {
		t.Errorf("cpu sample %+v", ss[2])
	}
	sum := summarizeProfile(ss, 2, "beat")
	for _, want := range []string{
		"1 cpu-clock samples", "1 voluntary and 1 involuntary switches", "2 read(2) returns",
		"`runtime.usleep.abi0 ← runtime.sysmon ← runtime.mstart1` | 1 | 0.500",
		"`github.com/supervise/supervise/watch/watchdog.beatStat` | 1 | 125",
		"1 returned EAGAIN or an error, 32.0 bytes",
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

// TestRestoreLimits runs the restorers newest first, once.
func TestRestoreLimits(t *testing.T) {
	var got []int
	pushRestorer(func() { got = append(got, 1) })
	pushRestorer(func() { got = append(got, 2) })
	restoreLimits()
	restoreLimits()
	if len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("restorers ran %v, want [2 1]", got)
	}
}

// TestUnknownFigure: a figure name that is not one of Figures is an error
// before anything runs.
func TestUnknownFigure(t *testing.T) {
	_, err := Run(Options{Figures: []string{"restart", "storms"}})
	if err == nil || !strings.Contains(err.Error(), `unknown figure "storms"`) {
		t.Fatalf("Run: %v", err)
	}
}

// TestPeerSelection: an unknown peer name is refused before anything runs,
// and a peer left out is reported absent as not selected.
func TestPeerSelection(t *testing.T) {
	if _, err := Run(Options{Peers: []string{"supervisor"}}); err == nil || !strings.Contains(err.Error(), `unknown peer "supervisor"`) {
		t.Fatalf("Run with an unknown peer: %v, want the unknown peer named", err)
	}
	h := &harness{o: Options{Peers: []string{"supervise"}}, r: newResults(), present: map[string]bool{}}
	h.checkPresent("runit", []string{"sh"})
	h.checkPresent("supervise", nil)
	if h.present["runit"] || h.r.Absent["runit"] != "not selected" {
		t.Errorf("runit present %v, absent %q; want absent as not selected", h.present["runit"], h.r.Absent["runit"])
	}
	if !h.present["supervise"] {
		t.Errorf("supervise not present although selected")
	}
}

// TestMarkdownLoad: the load averages read before and after a run head
// its tables.
func TestMarkdownLoad(t *testing.T) {
	r := newResults()
	r.Runs = 1
	r.Machine = map[string]string{"load before": "0.10 0.20 0.30", "load after": "1.00 2.00 3.00"}
	if md := r.Markdown(); !strings.Contains(md, "0.10 0.20 0.30 before the run, 1.00 2.00 3.00 after it") {
		t.Errorf("Markdown does not give the load averages:\n%s", md)
	}
	if la := loadAverage(); len(strings.Fields(la)) != 3 {
		t.Errorf("loadAverage() = %q, want three fields of /proc/loadavg", la)
	}
}
