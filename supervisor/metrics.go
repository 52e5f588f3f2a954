package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/supervisor/lifecycle"
)

// healthTimeout is how long /healthz and /metrics wait for the event loop.
const healthTimeout = time.Second

// serveMetrics starts the HTTP endpoint of [supervisor] metrics: GET
// /metrics (Prometheus text) and GET /healthz (200 while the event loop
// answers within a second, else 503).
//
// It speaks just enough HTTP/1.x for these two GETs (one request per
// connection, then close) instead of importing net/http, whose package
// initialisation alone adds over a megabyte to the resident memory of every
// supervisor, metrics enabled or not.
func (s *Supervisor) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Warn("metrics accept", zap.Error(err))
				time.Sleep(50 * time.Millisecond) // EMFILE and the like: do not spin
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serveHTTP(conn)
			}()
		}
	}()
	s.stopLoop = append(s.stopLoop, func() {
		ln.Close()
		<-done
		wg.Wait()
	})
	s.log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// maxRequestHead bounds what a metrics client may send before its request
// is refused.
const maxRequestHead = 8 << 10

// serveHTTP answers one request on conn and closes it.
func (s *Supervisor) serveHTTP(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReaderSize(io.LimitReader(conn, maxRequestHead), 1024)
	method, path, err := readRequestHead(br)
	status, body, ctype := 200, "", "text/plain; charset=utf-8"
	switch {
	case err != nil:
		status, body = 400, "bad request: "+err.Error()+"\n"
	case method != "GET" && method != "HEAD":
		status, body = 405, "method not allowed\n"
	case path == "/healthz" || path == "/metrics":
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		resp := s.Handle(ctx, control.Request{Command: control.CmdStatus})
		cancel()
		switch {
		case !resp.OK:
			status, body = 503, "event loop not responding\n"
		case path == "/healthz":
			body = "ok\n"
		default:
			var b strings.Builder
			writeMetrics(&b, resp.Programs)
			body, ctype = b.String(), "text/plain; version=0.0.4; charset=utf-8"
		}
	default:
		status, body = 404, "not found: try /metrics or /healthz\n"
	}
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, statusText[status], ctype, len(body))
	if method != "HEAD" {
		io.WriteString(conn, body)
	}
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

// readRequestHead reads an HTTP/1.x request line and its headers (which
// are skipped) and returns the method and the path without its query.
func readRequestHead(br *bufio.Reader) (method, path string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("reading the request line: %w", err)
	}
	method, path, err = parseRequestLine(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return "", "", err
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return "", "", fmt.Errorf("reading headers: %w", err)
		}
		if strings.TrimRight(h, "\r\n") == "" {
			return method, path, nil
		}
	}
}

// parseRequestLine splits "GET /metrics?x HTTP/1.1".
func parseRequestLine(line string) (method, path string, err error) {
	parts := strings.Split(line, " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return "", "", fmt.Errorf("malformed request line %.64q", line)
	}
	path = parts[1]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return parts[0], path, nil
}

var allStates = lifecycle.States

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
