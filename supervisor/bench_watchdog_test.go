package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/control"
)

// BenchmarkWatchdogDetection measures how late a watchdog kill is: 200
// programs beat once at start (touch) and go silent; each one's deadline is
// its last beat as the supervisor recorded it (last_beat_at) plus the
// timeout (500ms), and its kill is the exit the reaper collected. One op is
// one round of 200 programs; p50/p90/p99 of the delay over every program of
// every round are reported, with the worst case.
func BenchmarkWatchdogDetection(b *testing.B) {
	const (
		n       = 200
		timeout = 500 * time.Millisecond
	)
	var lat []time.Duration
	var worst time.Duration
	b.StopTimer()
	for round := 0; round < b.N; round++ {
		dir := b.TempDir()
		var toml strings.Builder
		for i := 0; i < n; i++ {
			hb := filepath.Join(dir, "hb", fmt.Sprintf("p%d", i))
			// After the kill the program waits in backoff for an hour,
			// so its last_beat_at stays readable in status. The long
			// start_grace makes sure the kill follows the beat, not a slow
			// start.
			fmt.Fprintf(&toml, `[programs.p%d]
command = ["/bin/sh", "-c", "touch %s; exec sleep 1000"]
stdout = "null"
stderr = "null"
backoff_initial = "1h"
backoff_max = "1h"
[programs.p%d.watchdog]
heartbeat_file = %q
timeout = "%s"
start_grace = "20s"
`, i, hb, i, hb, timeout)
		}
		cfg := benchConfig(b, toml.String())
		sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		exits := map[string]time.Time{}
		all := make(chan struct{})
		sup.trace = func(what, name string, at time.Time) {
			if what != "exit" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if _, seen := exits[name]; !seen {
				exits[name] = at
				if len(exits) == n {
					close(all)
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan struct{})
		go func() {
			if _, err := sup.Run(ctx); err != nil {
				b.Error(err)
			}
			close(ended)
		}()
		<-sup.Ready()
		b.StartTimer()
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d programs were killed by their watchdog", len(exits), n)
		}
		b.StopTimer()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		r := sup.Handle(rctx, control.Request{Command: control.CmdStatus})
		rcancel()
		if !r.OK || len(r.Programs) != n {
			b.Fatalf("status: %+v", r)
		}
		for _, p := range r.Programs {
			if p.Heartbeat.LastBeatAt == nil || p.Stats.Starts != 1 || p.Stats.Failures != 1 {
				b.Fatalf("program %s: beat %v, %d starts, %d failures; want one beat, one start, one failure",
					p.Name, p.Heartbeat.LastBeatAt, p.Stats.Starts, p.Stats.Failures)
			}
			d := exits[p.Name].Sub(p.Heartbeat.LastBeatAt.Add(timeout))
			if d < 0 {
				b.Fatalf("program %s killed %s before its deadline", p.Name, -d)
			}
			lat = append(lat, d)
			worst = max(worst, d)
		}
		cancel()
		<-ended
	}
	reportPercentiles(b, lat)
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}
