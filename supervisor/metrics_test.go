package supervisor

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
)

// startMetrics runs a supervisor whose metrics endpoint listens on
// 127.0.0.1:0 and returns it with the address it logged as bound. Port 0
// is refused in a config file, so it is set on the decoded configuration.
func startMetrics(t *testing.T, programs string, clk clock.Clock) (*harness, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "supervise.toml")
	toml := "[supervisor]\nsocket = \"off\"\nwatch_config = false\nmetrics = \"127.0.0.1:9\"\n" + programs
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Supervisor.Metrics = "127.0.0.1:0"
	if clk == nil {
		clk = clock.Real()
	}
	core, logs := observer.New(zap.DebugLevel)
	sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.New(core), Clock: clk, RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, sup: sup, clk: clk, logs: logs, dir: dir, done: make(chan int, 1), stop: cancel}
	go func() {
		code, err := sup.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		h.done <- code
	}()
	<-sup.Ready()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			t.Error("supervisor did not end")
		}
	})
	var addr string
	for _, e := range logs.FilterMessage("metrics listening").All() {
		addr, _ = e.ContextMap()["addr"].(string)
	}
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("no bound metrics address logged (%q); log:\n%s", addr, h.dump())
	}
	return h, addr
}

// fetch sends one request and returns the status code, body and headers.
func fetch(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// raw writes req on a new connection and returns everything the server
// sends before it closes the connection.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestMetricsAndHealthz(t *testing.T) {
	h, addr := startMetrics(t, "[programs.m]\ncommand = [\"/bin/sleep\", \"1000\"]\n", nil)
	h.waitFor("m running", func() bool { return h.status("m").PID != 0 })
	if code, body, _ := fetch(t, "GET", "http://"+addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	code, body, hdr := fetch(t, "GET", "http://"+addr+"/metrics?x=1")
	if code != 200 || hdr.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("metrics: %d %v", code, hdr)
	}
	for _, want := range []string{
		`supervise_program_state{program="m",instance="m",state="running"} 1`,
		`supervise_program_up{program="m",instance="m"} 1`,
		`supervise_program_breaker_state{program="m",instance="m",state="closed"} 1`,
		`supervise_program_failures_total{program="m",instance="m"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lacks %q:\n%s", want, body)
		}
	}
	if n, _ := strconv.Atoi(hdr.Get("Content-Length")); n != len(body) {
		t.Fatalf("Content-Length %q for a body of %d bytes", hdr.Get("Content-Length"), len(body))
	}
}

// HEAD answers like GET without a body, with the GET's Content-Length.
func TestMetricsHead(t *testing.T) {
	h, addr := startMetrics(t, "[programs.m]\ncommand = [\"/bin/sleep\", \"1000\"]\n", nil)
	h.waitFor("m running", func() bool { return h.status("m").PID != 0 })
	for _, path := range []string{"/healthz", "/metrics"} {
		_, getBody, getHdr := fetch(t, "GET", "http://"+addr+path)
		code, body, hdr := fetch(t, "HEAD", "http://"+addr+path)
		if code != 200 || body != "" {
			t.Fatalf("HEAD %s: %d %q", path, code, body)
		}
		if hdr.Get("Content-Type") != getHdr.Get("Content-Type") || hdr.Get("Content-Length") != strconv.Itoa(len(getBody)) {
			t.Fatalf("HEAD %s: headers %v, GET sent %d bytes with %v", path, hdr, len(getBody), getHdr)
		}
	}
	if code, body, _ := fetch(t, "HEAD", "http://"+addr+"/nope"); code != 404 || body != "" {
		t.Fatalf("HEAD /nope: %d %q", code, body)
	}
}

func TestMetricsBadRequests(t *testing.T) {
	h, addr := startMetrics(t, "", nil)
	for _, c := range []struct{ req, status, body string }{
		{"garbage\r\n\r\n", "HTTP/1.1 400 ", ""},
		{"GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ", "missing required Host header"},
		{"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 ", "Allow: GET, HEAD"},
		{"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 ", "Allow: GET, HEAD"},
		{"PUT /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 ", ""},
		{"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 ", "try /metrics or /healthz"},
		{"GET /metrics/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 ", ""},
		{"GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200 ", "\r\n\r\nok\n"},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", "HTTP/1.1 431 ", ""},
	} {
		got := raw(t, addr, c.req)
		if !strings.HasPrefix(got, c.status) || !strings.Contains(got, c.body) {
			t.Errorf("%.40q: got %.200q, want %q with %q", c.req, got, c.status, c.body)
		}
	}
	if st := h.ctl(control.CmdStatus); !st.OK {
		t.Fatal("supervisor disturbed by bad metrics requests")
	}
}

// A connection that does not finish its headers is closed after
// metricsReadHeaderTimeout, and the endpoint keeps answering others.
func TestMetricsSlowHeadersClosed(t *testing.T) {
	old := metricsReadHeaderTimeout
	metricsReadHeaderTimeout = 300 * time.Millisecond
	t.Cleanup(func() { metricsReadHeaderTimeout = old })
	_, addr := startMetrics(t, "", nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	begin := time.Now()
	n, err := c.Read(make([]byte, 100))
	if took := time.Since(begin); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || took < 250*time.Millisecond {
		t.Fatalf("half-sent request: read %d bytes, %v after %s; want the server to close it after 300ms", n, err, took)
	}
	if code, _, _ := fetch(t, "GET", "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("healthz after a slow client: %d", code)
	}
}

// gateClock is the real clock, except that while it is frozen every call
// of Now or Since waits: the event loop, which asks it for the time to
// answer status, stops answering.
type gateClock struct {
	clock.Clock
	mu      sync.Mutex
	gate    chan struct{}
	blocked int
}

func (g *gateClock) wait() {
	g.mu.Lock()
	gate := g.gate
	if gate != nil {
		g.blocked++
	}
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (g *gateClock) Now() time.Time                  { g.wait(); return g.Clock.Now() }
func (g *gateClock) Since(t time.Time) time.Duration { g.wait(); return g.Clock.Since(t) }

func (g *gateClock) freeze() {
	g.mu.Lock()
	g.gate, g.blocked = make(chan struct{}), 0
	g.mu.Unlock()
}

func (g *gateClock) thaw() (blocked int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	return g.blocked
}

// While the event loop does not answer, /healthz and /metrics answer 503
// after healthTimeout (to GET and HEAD), and 200 again once it does.
func TestMetricsLoopNotAnswering(t *testing.T) {
	clk := &gateClock{Clock: clock.Real()}
	h, addr := startMetrics(t, "[programs.m]\ncommand = [\"/bin/sleep\", \"1000\"]\n", clk)
	t.Cleanup(func() { clk.thaw() }) // before the harness stops the supervisor
	h.waitFor("m running", func() bool { return h.status("m").PID != 0 })

	clk.freeze()
	for _, c := range []struct{ method, path string }{{"GET", "/healthz"}, {"GET", "/metrics"}, {"HEAD", "/healthz"}, {"HEAD", "/metrics"}} {
		begin := time.Now()
		code, body, hdr := fetch(t, c.method, "http://"+addr+c.path)
		took := time.Since(begin)
		if code != 503 || took < healthTimeout || took > healthTimeout+3*time.Second {
			t.Fatalf("%s %s with the loop stuck: %d %q after %s", c.method, c.path, code, body, took)
		}
		if c.method == "GET" && !strings.Contains(body, "event loop not responding") {
			t.Fatalf("%s %s: 503 body %q", c.method, c.path, body)
		}
		if hdr.Get("Retry-After") == "" {
			t.Fatalf("%s %s: 503 without Retry-After: %v", c.method, c.path, hdr)
		}
	}
	// The 404 does not ask the loop, so it answers at once.
	begin := time.Now()
	if code, _, _ := fetch(t, "GET", "http://"+addr+"/nope"); code != 404 || time.Since(begin) >= healthTimeout {
		t.Fatalf("/nope with the loop stuck: %d after %s", code, time.Since(begin))
	}
	if n := clk.thaw(); n == 0 {
		t.Fatal("the loop never asked the clock: the 503s were not caused by a stuck loop")
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _, _ := fetch(t, "GET", "http://"+addr+path); code != 200 {
			t.Fatalf("GET %s after the loop recovered: %d", path, code)
		}
	}
}

// Stopping the supervisor closes the endpoint, including a kept-alive
// connection.
func TestMetricsClosedAtExit(t *testing.T) {
	h, addr := startMetrics(t, "", nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive healthz: %v %+v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	h.stop()
	h.exitCode()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("kept-alive connection still open after exit: %v", err)
	}
	if c2, err := net.Dial("tcp", addr); err == nil {
		c2.Close()
		t.Fatal("metrics address still accepts after exit")
	}
}

func TestMetricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "supervise.toml")
	os.WriteFile(path, []byte("[supervisor]\nsocket = \"off\"\nwatch_config = false\nmetrics = \""+ln.Addr().String()+"\"\n[programs.m]\ncommand = [\"/bin/sleep\", \"1000\"]\n"), 0o644)
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop(), RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	code, err := sup.Run(context.Background())
	if code != 2 || err == nil || !strings.Contains(err.Error(), "metrics: ") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("metrics on a used address: code %d, %v", code, err)
	}
}

// FuzzMetricsRouting sends any request line that net/http accepts through
// the endpoint's handler: only GET and HEAD of /metrics and /healthz reach
// the loop; other methods get 405, other paths 404 (or a redirect to the
// cleaned path); a loop that does not answer gives 503.
func FuzzMetricsRouting(f *testing.F) {
	for _, s := range []struct {
		method, target string
		ok             bool
	}{
		{"GET", "/metrics", true}, {"HEAD", "/healthz?x=1", true}, {"GET", "/healthz", false},
		{"POST", "/metrics", true}, {"GET", "/", true}, {"GET", "//metrics", true},
		{"GET", "/a/../metrics", true}, {"OPTIONS", "*", true}, {"CONNECT", "x:1", true},
		{"GET", "http://h/metrics", true}, {"get", "/metrics", true}, {"GET", "/metrics/", true},
	} {
		f.Add(s.method, s.target, s.ok)
	}
	f.Fuzz(func(t *testing.T, method, target string, loopOK bool) {
		if strings.ContainsAny(method+target, " \r\n") {
			return // not one request line
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			return // the server answers 400 before any handler
		}
		asked := false
		h := metricsHandler(func(ctx context.Context) control.Response {
			asked = true
			if !loopOK {
				return control.Response{Error: "no answer"}
			}
			return control.Response{OK: true, Programs: []control.ProgramStatus{{Name: "m", State: "running", PID: 1}}}
		})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		endpoint := (req.Method == "GET" || req.Method == "HEAD") && (req.URL.Path == "/metrics" || req.URL.Path == "/healthz")
		switch code := w.Code; {
		case asked != (endpoint && (code == 200 || code == 503)):
			t.Fatalf("%s %q (path %q): asked the loop %v, answered %d", method, target, req.URL.Path, asked, code)
		case endpoint && code != map[bool]int{true: 200, false: 503}[loopOK]:
			t.Fatalf("%s %q: %d with the loop answering %v", method, target, code, loopOK)
		case code == 200 && !endpoint, code == 503 && !endpoint:
			t.Fatalf("%s %q (path %q): %d", method, target, req.URL.Path, code)
		case code == 404 && req.Method != "GET" && req.Method != "HEAD":
			t.Fatalf("%s %q: 404 for a method other than GET or HEAD", method, target)
		case code == 405 && (req.Method == "GET" || req.Method == "HEAD"):
			t.Fatalf("%s %q: 405 for GET or HEAD", method, target)
		case code != 200 && code != 503 && code != 404 && code != 405 && code != 301 && code != 307 && code != 308 && code != 400:
			t.Fatalf("%s %q: unexpected %d", method, target, code)
		}
	})
}
