package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/control"
)

// healthTimeout is how long /healthz and /metrics wait for the event loop.
const healthTimeout = time.Second

// serveMetrics starts the HTTP endpoint of [supervisor] metrics: GET
// /metrics (Prometheus text) and GET /healthz (200 while the event loop
// answers within a second, else 503).
func (s *Supervisor) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	// status asks the event loop, answering 503 itself when it is wedged.
	status := func(w http.ResponseWriter, r *http.Request) ([]control.ProgramStatus, bool) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		resp := s.Handle(ctx, control.Request{Command: control.CmdStatus})
		if !resp.OK {
			http.Error(w, "event loop not responding\n", http.StatusServiceUnavailable)
			return nil, false
		}
		return resp.Programs, true
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := status(w, r); ok {
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if progs, ok := status(w, r); ok {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			writeMetrics(w, progs)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	s.stopLoop = append(s.stopLoop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	s.log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return nil
}

var allStates = []State{Starting, Running, Backoff, Stopping, Stopped, Exited, Open}

// writeMetrics renders programs in the Prometheus text format.
func writeMetrics(w interface{ Write([]byte) (int, error) }, progs []control.ProgramStatus) {
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
			fmt.Fprintf(&b, "supervise_program_state{program=%q,state=%q} %d\n", p.Name, st, v)
		}
	})
	family("supervise_program_up", "gauge", "1 when the program has a running process.", func(p control.ProgramStatus) {
		v := 0
		if p.PID != 0 {
			v = 1
		}
		fmt.Fprintf(&b, "supervise_program_up{program=%q} %d\n", p.Name, v)
	})
	family("supervise_program_restarts_total", "counter", "Restarts of the program.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_restarts_total{program=%q} %d\n", p.Name, p.Restarts)
	})
	family("supervise_program_starts_total", "counter", "Runs started.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_starts_total{program=%q} %d\n", p.Name, p.Stats.Starts)
	})
	family("supervise_program_failures_total", "counter", "Failed runs.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_failures_total{program=%q} %d\n", p.Name, p.Stats.Failures)
	})
	family("supervise_program_breaker_state", "gauge", "1 for the restart breaker's current state.", func(p control.ProgramStatus) {
		for _, st := range []string{"closed", "open", "half_open"} {
			v := 0
			if p.Breaker.State == st {
				v = 1
			}
			fmt.Fprintf(&b, "supervise_program_breaker_state{program=%q,state=%q} %d\n", p.Name, st, v)
		}
	})
	family("supervise_program_breaker_transitions_total", "counter", "Breaker state changes.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_breaker_transitions_total{program=%q} %d\n", p.Name, p.Stats.StateChanges)
	})
	family("supervise_program_breaker_rejected_total", "counter", "Starts refused while the breaker was open.", func(p control.ProgramStatus) {
		fmt.Fprintf(&b, "supervise_program_breaker_rejected_total{program=%q} %d\n", p.Name, p.Stats.Rejected)
	})
	family("supervise_program_heartbeat_age_seconds", "gauge", "Seconds since the program's last heartbeat.", func(p control.ProgramStatus) {
		if p.Heartbeat.AgeSeconds != nil {
			fmt.Fprintf(&b, "supervise_program_heartbeat_age_seconds{program=%q} %g\n", p.Name, *p.Heartbeat.AgeSeconds)
		}
	})
	w.Write([]byte(b.String()))
}
