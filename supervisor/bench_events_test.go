package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
)

// BenchmarkCrashLoopSubscribers measures the restart latency of a crash
// loop of 100 programs (from the reaper collecting a program's exit to
// its next spawn) with no event stream and with 10 `supervise events`
// clients reading over the control socket. One op is one crash-respawn
// of one program; p50/p90/p99 are reported, and the events the clients
// read (events/op).
func BenchmarkCrashLoopSubscribers(b *testing.B) {
	for _, subs := range []int{0, 10} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			var toml strings.Builder
			fmt.Fprintf(&toml, "[supervisor]\nsocket = %q\nwatch_config = false\n", filepath.Join(b.TempDir(), "ctl.sock"))
			for i := range 100 {
				fmt.Fprintf(&toml, `[programs.c%d]
command = ["/bin/false"]
restart = "always"
backoff_initial = "0s"
backoff_max = "0s"
min_uptime = "0s"
stdout = "null"
stderr = "null"
[programs.c%d.breaker]
max_failures = 1000000000
`, i, i)
			}
			cfg, err := conf.Parse(filepath.Join(b.TempDir(), "supervise.toml"), []byte(toml.String()))
			if err != nil {
				b.Fatal(err)
			}
			sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			lastExit := map[string]time.Time{}
			var lat []time.Duration
			done := make(chan struct{})
			target := b.N
			measuring := atomic.Bool{}
			sup.trace = func(what, name string, at time.Time) {
				mu.Lock()
				defer mu.Unlock()
				switch what {
				case "exit":
					lastExit[name] = at
				case "spawn":
					if ex, ok := lastExit[name]; ok && measuring.Load() && len(lat) < target {
						lat = append(lat, at.Sub(ex))
						if len(lat) == target {
							close(done)
						}
					}
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			ended := make(chan struct{})
			go func() { sup.Run(ctx); close(ended) }()
			<-sup.Ready()
			var read atomic.Int64
			var clients sync.WaitGroup
			cctx, stopClients := context.WithCancel(context.Background())
			for range subs {
				subscribed := make(chan struct{})
				clients.Go(func() {
					first := true
					control.Do(cctx, sup.SocketPath(), control.Request{Command: control.CmdEvents}, func(r control.Response) error {
						if first {
							first = false
							close(subscribed)
						}
						if r.Event != nil {
							read.Add(1)
						}
						return nil
					})
				})
				<-subscribed
			}
			time.Sleep(200 * time.Millisecond) // into the steady crash loop
			b.ResetTimer()
			measuring.Store(true)
			<-done
			b.StopTimer()
			stopClients()
			clients.Wait()
			cancel()
			<-ended
			reportPercentiles(b, lat)
			b.ReportMetric(float64(read.Load())/float64(b.N), "events/op")
		})
	}
}
