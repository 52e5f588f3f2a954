package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// healthTimeout is how long /healthz and /metrics wait for the event loop.
const healthTimeout = time.Second

// Limits of the metrics endpoint. A scraper sends a few hundred bytes of
// headers and reads a few kilobytes; anything slower or bigger is refused
// so that no client can hold the endpoint's goroutines or memory.
const (
	metricsMaxHeaderBytes = 8 << 10
	metricsWriteTimeout   = 10 * time.Second // above healthTimeout, so a 503 gets out
	metricsIdleTimeout    = 2 * time.Minute  // above a one-minute scrape interval, for keep-alive
)

// metricsReadHeaderTimeout bounds the time from accepting a connection (or
// the end of the previous request on it) to the end of the request's
// headers. A variable so that a test can shorten it.
var metricsReadHeaderTimeout = 5 * time.Second

// serveMetrics starts the HTTP endpoint of [supervisor] metrics on addr:
// GET or HEAD /metrics (Prometheus text) and /healthz (200 while the event
// loop answers within healthTimeout). Both answer 503 when the loop does
// not; other paths get 404 and other methods 405. It logs the bound address
// ("metrics listening", addr), which is how a port of 0 is learned.
//
// The server and every connection it accepted are stopped by cleanup:
// requests waiting for the loop are cancelled, then the server shuts down.
func (s *Supervisor) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	status := func(ctx context.Context) control.Response {
		return s.Handle(ctx, control.Request{Command: control.CmdStatus})
	}
	errLog, _ := zap.NewStdLogAt(s.log.With(zap.String("addr", ln.Addr().String())), zap.WarnLevel)
	srv := &http.Server{
		Handler:           metricsHandler(status, s.writeEventMetrics),
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          errLog,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	s.stopLoop = append(s.stopLoop, func() {
		cancel() // the loop has ended: a request waiting for it gets 503 now
		ctx, stop := context.WithTimeout(context.Background(), time.Second)
		defer stop()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	})
	s.log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// metricsHandler routes the endpoint's requests. status asks the event loop
// for every program's status; it must return by its context's deadline.
// extra write more families after the programs'.
func metricsHandler(status func(context.Context) control.Response, extra ...func(io.Writer)) http.Handler {
	mux := http.NewServeMux()
	// "GET" patterns match HEAD too; a method no pattern allows gets 405
	// with an Allow header, on every path since "GET /" matches them all.
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		progs, ok := askLoop(w, r, status)
		if !ok {
			return
		}
		var b bytes.Buffer
		writeMetrics(&b, progs)
		for _, f := range extra {
			f(&b)
		}
		reply(w, http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", b.Bytes())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := askLoop(w, r, status); ok {
			reply(w, http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, "text/plain; charset=utf-8", []byte("not found: try /metrics or /healthz\n"))
	})
	return mux
}

// askLoop returns the programs' status, or answers 503 and returns false
// when the event loop does not answer within healthTimeout.
func askLoop(w http.ResponseWriter, r *http.Request, status func(context.Context) control.Response) ([]control.ProgramStatus, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	resp := status(ctx)
	if !resp.OK {
		w.Header().Set("Retry-After", "1")
		reply(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("event loop not responding: "+resp.Error+"\n"))
		return nil, false
	}
	return resp.Programs, true
}

// reply writes a complete response; for HEAD, net/http drops the body and
// keeps its Content-Length.
func reply(w http.ResponseWriter, code int, ctype string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(body)
}

var allStates = lifecycle.States

// labels are the labels of a program's series: program (its table) and
// instance ("web:0"; the same as program for a program without replicas).
func labels(p control.ProgramStatus) string {
	prog := p.Program
	if prog == "" {
		prog = p.Name
	}
	return fmt.Sprintf("program=%q,instance=%q", prog, p.Name)
}

// writeMetrics renders programs in the Prometheus text format.
func writeMetrics(w io.Writer, progs []control.ProgramStatus) {
	var b strings.Builder
	sort.Slice(progs, func(i, j int) bool { return progs[i].Name < progs[j].Name })
	family := func(name, typ, help string, each func(p control.ProgramStatus)) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, p := range progs {
			each(p)
		}
	}
	family("supervise_program_state", "gauge", "1 for the program's current state.", func(p control.ProgramStatus) {
		for _, st := range allStates {
			v := 0
			if p.State == string(st) {
				v = 1
			}
			fmt.Fprintf(&b, "supervise_program_state{%s,state=%q} %d\n", labels(p), st, v)
		}
	})
	family("supervise_program_up", "gauge", "1 when the program has a running process.", func(p control.ProgramStatus) {
		v := 0
		if p.PID != 0 {
			v = 1
		}
		fmt.Fprintf(&b, "supervise_program_up{%s} %d\n", labels(p), v)
	})
	family("supervise_program_restarts_total", "counter", "Restarts of the program.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_restarts_total{%s} %d\n", labels(p), p.Restarts)
	})
	family("supervise_program_starts_total", "counter", "Runs started.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_starts_total{%s} %d\n", labels(p), p.Stats.Starts)
	})
	family("supervise_program_failures_total", "counter", "Failed runs.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_failures_total{%s} %d\n", labels(p), p.Stats.Failures)
	})
	family("supervise_program_breaker_state", "gauge", "1 for the restart breaker's current state.", func(p control.ProgramStatus) {
		for _, st := range []string{"closed", "open", "half_open"} {
			v := 0
			if p.Breaker.State == st {
				v = 1
			}
			fmt.Fprintf(&b, "supervise_program_breaker_state{%s,state=%q} %d\n", labels(p), st, v)
		}
	})
	family("supervise_program_breaker_transitions_total", "counter", "Breaker state changes.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_breaker_transitions_total{%s} %d\n", labels(p), p.Stats.StateChanges)
	})
	family("supervise_program_breaker_rejected_total", "counter", "Starts refused while the breaker was open.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_breaker_rejected_total{%s} %d\n", labels(p), p.Stats.Rejected)
	})
	family("supervise_program_heartbeat_age_seconds", "gauge", "Seconds since the program's last heartbeat.", func(p control.ProgramStatus) {
		if p.Heartbeat.AgeSeconds != nil {
			fmt.Fprintf(&b, "supervise_program_heartbeat_age_seconds{%s} %g\n", labels(p), *p.Heartbeat.AgeSeconds)
		}
	})
	family("supervise_program_output_dropped_lines_total", "counter", "Output lines dropped above log_rate.", func(p control.ProgramStatus) {
		if p.Output != nil {
			fmt.Fprintf(&b, "supervise_program_output_dropped_lines_total{%s} %d\n", labels(p), p.Output.DroppedLines)
		}
	})
	family("supervise_program_output_dropped_bytes_total", "counter", "Output bytes that could not be written to the program's log file.", func(p control.ProgramStatus) {
		if p.Output != nil {
			fmt.Fprintf(&b, "supervise_program_output_dropped_bytes_total{%s} %d\n", labels(p), p.Output.DroppedBytes)
		}
	})
	if slices.ContainsFunc(progs, func(p control.ProgramStatus) bool { return p.Probes != nil }) {
		probes := func(each func(p control.ProgramStatus, probe string, ps *control.ProbeStatus)) func(control.ProgramStatus) {
			return func(p control.ProgramStatus) {
				if p.Probes == nil {
					return
				}
				if p.Probes.Readiness != nil {
					each(p, probeReadiness, p.Probes.Readiness)
				}
				if p.Probes.Liveness != nil {
					each(p, probeLiveness, p.Probes.Liveness)
				}
			}
		}
		family("supervise_probe_state", "gauge", "1 for the current state of each probe of the program.",
			probes(func(p control.ProgramStatus, probe string, ps *control.ProbeStatus) {
				for _, st := range []string{"passing", "failing", "unknown"} {
					v := 0
					if ps.State == st {
						v = 1
					}
					fmt.Fprintf(&b, "supervise_probe_state{%s,probe=%q,state=%q} %d\n", labels(p), probe, st, v)
				}
			}))
		family("supervise_probe_attempts_total", "counter", "Probe attempts made.",
			probes(func(p control.ProgramStatus, probe string, ps *control.ProbeStatus) {
				fmt.Fprintf(&b, "supervise_probe_attempts_total{%s,probe=%q} %d\n", labels(p), probe, ps.Attempts)
			}))
		family("supervise_probe_failures_total", "counter", "Probe attempts that failed.",
			probes(func(p control.ProgramStatus, probe string, ps *control.ProbeStatus) {
				fmt.Fprintf(&b, "supervise_probe_failures_total{%s,probe=%q} %d\n", labels(p), probe, ps.Failures)
			}))
		family("supervise_probe_duration_seconds", "summary", "Time the probe attempts took.",
			probes(func(p control.ProgramStatus, probe string, ps *control.ProbeStatus) {
				fmt.Fprintf(&b, "supervise_probe_duration_seconds_sum{%s,probe=%q} %g\n", labels(p), probe, ps.DurationSecondsTotal)
				fmt.Fprintf(&b, "supervise_probe_duration_seconds_count{%s,probe=%q} %d\n", labels(p), probe, ps.Attempts)
			}))
	}
	w.Write([]byte(b.String()))
}
