package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/control"
)

// redrawGap is the least time between two redraws of status --watch: a
// burst of events (a crash loop, a teardown) is drawn as it settles, not
// once per event.
const redrawGap = 100 * time.Millisecond

// cmdStatusWatch is `supervise status --watch`: the status table, drawn
// again after events, until Ctrl-C.
func cmdStatusWatch(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	path, code, err := socketFor(inv.Value("config"), inv.Value("socket"))
	if err != nil {
		return code, err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	w := &statusWatch{out: stdout, tty: isTerminal(stdout), json: inv.Bool("json")}
	if err := w.run(ctx, path, inv.Names); err != nil {
		var re *control.RemoteError
		if errors.As(err, &re) {
			fmt.Fprintf(stderr, "supervise: %s\n", re.Msg)
			return 1, nil
		}
		return 1, err
	}
	return 0, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// statusWatch follows the supervisor's events and shows the status table
// after each: redrawn in place on a terminal, else one line per program
// whose row changed (after the whole table once), or with json one
// status document per line.
type statusWatch struct {
	out  io.Writer
	tty  bool
	json bool
	prev map[string]string // each program's row, as last shown
	now  func() time.Time
}

// run shows the table until ctx ends (nil) or the supervisor stops (nil,
// after saying so) or cannot be asked (the error).
func (w *statusWatch) run(ctx context.Context, path string, names []string) error {
	if w.now == nil {
		w.now = time.Now
	}
	changed := make(chan struct{}, 1)
	ended := make(chan error, 1)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	go func() {
		// The stream's first reply says it is subscribed: the first
		// table is fetched after it, so that no change falls between.
		ended <- control.Do(streamCtx, path, control.Request{Command: control.CmdEvents, Names: names}, func(control.Response) error {
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			<-ended
			return nil
		case err := <-ended:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				fmt.Fprintf(w.out, "%s the supervisor has stopped\n", w.now().Format("15:04:05"))
			}
			return err
		case <-changed:
		}
		if wait := redrawGap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				continue
			}
		}
		last = time.Now()
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := control.Call(callCtx, path, control.Request{Command: control.CmdStatus, Names: names})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		if err := w.show(resp.Programs); err != nil {
			return err
		}
	}
}

// show writes one update.
func (w *statusWatch) show(progs []control.ProgramStatus) error {
	var b bytes.Buffer
	switch {
	case w.json:
		if progs == nil {
			progs = []control.ProgramStatus{}
		}
		data, err := json.Marshal(map[string]any{"programs": progs})
		if err != nil {
			return fmt.Errorf("writing status: %w", err)
		}
		b.Write(append(data, '\n'))
	case w.tty:
		// Home, clear, then the table: the terminal shows the latest.
		fmt.Fprintf(&b, "\x1b[H\x1b[2J%s  supervise status --watch  (Ctrl-C to quit)\n\n", w.now().Format("15:04:05"))
		if err := control.WriteTable(&b, progs); err != nil {
			return err
		}
	default:
		w.lines(&b, progs)
	}
	_, err := w.out.Write(b.Bytes())
	return err
}

// lines writes the table the first time, then a line per program whose
// row changed, the time first, and a line per program that is gone. An
// instance's line is its row of the table, which groups the instances of
// a program with replicas under a line of its own.
func (w *statusWatch) lines(b *bytes.Buffer, progs []control.ProgramStatus) {
	var table bytes.Buffer
	control.WriteTable(&table, progs)
	// Each row begins with its program's name (an instance's indented);
	// names hold no blanks.
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")[1:] {
		line = strings.TrimSpace(line)
		name, _, _ := strings.Cut(line, " ")
		rows[name] = line
	}
	if w.prev == nil {
		b.Write(table.Bytes())
		w.prev = map[string]string{}
		for _, p := range progs {
			w.prev[p.Name] = rowKey(p)
		}
		return
	}
	stamp := w.now().Format("15:04:05")
	seen := map[string]bool{}
	for _, p := range progs {
		seen[p.Name] = true
		key := rowKey(p)
		if w.prev[p.Name] != key {
			fmt.Fprintf(b, "%s %s\n", stamp, rows[p.Name])
			w.prev[p.Name] = key
		}
	}
	for name := range w.prev {
		if !seen[name] {
			fmt.Fprintf(b, "%s %s removed\n", stamp, name)
			delete(w.prev, name)
		}
	}
}

// rowKey is what makes a row change: everything but the clocks (uptime,
// heartbeat age) and the probes' counters, which move without events.
func rowKey(p control.ProgramStatus) string {
	last := ""
	if p.LastExit != nil {
		last = fmt.Sprintf("%d/%s/%s/%d", p.LastExit.Code, p.LastExit.Signal, p.LastExit.Error, p.LastExit.At.UnixNano())
	}
	probes := ""
	if p.Probes != nil {
		for _, pr := range []*control.ProbeStatus{p.Probes.Readiness, p.Probes.Liveness} {
			if pr != nil {
				probes += fmt.Sprintf("%s/%d,", pr.State, pr.ConsecutiveFailures)
			}
		}
	}
	return fmt.Sprintf("%s|%d|%d|%s|%d|%v|%s|%s|%s", p.State, p.PID, p.Restarts, p.Breaker.State, p.Breaker.Failures, p.Ready, last, p.Error, probes)
}
