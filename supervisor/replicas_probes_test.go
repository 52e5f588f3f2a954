package supervisor

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// instanceServerAddrEnv makes helperServer an instance's server: it
// listens on that address and answers GET /healthz?who=NAME with 200 when
// NAME is its own $SUPERVISE_INSTANCE and the file
// $SUPERVISOR_TEST_HTTP_GATE exists, 503 while it does not, 500 for
// another name.
const instanceServerAddrEnv = "SUPERVISOR_TEST_HTTP_ADDR"

func instanceServer() int {
	ln, err := net.Listen("tcp", os.Getenv(instanceServerAddrEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self, gate := os.Getenv("SUPERVISE_INSTANCE"), os.Getenv("SUPERVISOR_TEST_HTTP_GATE")
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch _, err := os.Stat(gate); {
		case r.URL.Query().Get("who") != self:
			http.Error(w, "I am "+self, http.StatusInternalServerError)
		case err != nil:
			http.Error(w, "closed", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, self)
		}
	}))
	return 0
}

// freePortPrefix finds a port prefix P such that P0 ... P(n-1) are free.
func freePortPrefix(t *testing.T, n int) int {
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

// Each instance is probed at its own URL (SPEC §13: the port and the
// name in the probe's target are the instance's), served by its own
// process; depends_on waits for every instance, or for the one named.
func TestReplicasHTTPProbePerInstance(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := freePortPrefix(t, 3)
	h := startSup(t, fmt.Sprintf(`
[programs.web]
command = [%q]
replicas = 3
environment = { %s = "1", %s = "127.0.0.1:%d{replica}", SUPERVISOR_TEST_HTTP_GATE = "$DIR/gate-{replica}" }
[programs.web.readiness]
http = "http://127.0.0.1:%d{replica}/healthz?who={name}"
interval = "50ms"
timeout = "2s"

[programs.lb]
command = ["/bin/sleep", "1000"]
depends_on = { web = "ready" }

[programs.first]
command = ["/bin/sleep", "1000"]
depends_on = ["web:0"]
`, self, helperServerEnv, instanceServerAddrEnv, prefix, prefix), nil)
	webs := []string{"web:0", "web:1", "web:2"}
	// The probe reaches each instance's own server: its 503 (closed), not
	// the 500 of a server asked for another name.
	h.waitFor("every instance running, its probe answered 503", func() bool {
		for _, n := range webs {
			st := h.status(n)
			if st.PID == 0 || st.Ready || st.Probes == nil || st.Probes.Readiness == nil ||
				!strings.Contains(st.Probes.Readiness.LastError, "503") {
				return false
			}
		}
		return true
	})
	if lb, first := h.status("lb"), h.status("first"); lb.State != "waiting" || first.State != "waiting" ||
		!slices.Equal(lb.WaitingFor, []string{"web"}) || !slices.Equal(first.WaitingFor, []string{"web:0"}) {
		t.Fatalf("lb %+v\nfirst %+v", lb, first)
	}

	gate := func(i int) {
		if err := os.WriteFile(filepath.Join(h.dir, fmt.Sprintf("gate-%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gate(0)
	h.waitFor("first running once web:0 is ready", func() bool { return h.status("first").State == "running" })
	if st := h.status("web:0"); !st.Ready || st.Probes.Readiness.State != "passing" {
		t.Fatalf("web:0 %+v", st)
	}
	time.Sleep(200 * time.Millisecond)
	if lb := h.status("lb"); lb.State != "waiting" || h.status("web:1").Ready {
		t.Fatalf("lb started with web:1 and web:2 not ready: %+v", lb)
	}
	gate(1)
	gate(2)
	h.waitFor("lb running once every instance is ready", func() bool { return h.status("lb").State == "running" })

	// The rows keep the instance's identity, probes and autostart.
	for i, n := range webs {
		st := h.status(n)
		if st.Program != "web" || st.Replica != i || !st.Autostart || !st.Ready ||
			st.Probes.Readiness.Kind != "http" || st.Probes.Readiness.State != "passing" {
			t.Errorf("%s row %+v", n, st)
		}
	}
	var body strings.Builder
	writeMetrics(&body, h.ctl(control.CmdStatus).Programs)
	if want := `supervise_probe_state{program="web",instance="web:2",probe="readiness",state="passing"} 1`; !strings.Contains(body.String(), want) {
		t.Errorf("metrics lack %s:\n%s", want, body.String())
	}
}
