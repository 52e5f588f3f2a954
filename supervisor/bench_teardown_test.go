package supervisor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkTeardown measures a teardown of 500 programs that end on SIGTERM
// (/bin/sleep: the default action), all at one stop_priority and spread
// over five: the time from Shutdown to Run returning. The programs are
// started outside the timed region. One op is one whole teardown.
func BenchmarkTeardown(b *testing.B) {
	const n = 500
	for _, prios := range []int{1, 5} {
		b.Run(fmt.Sprintf("%d-programs-%d-priorities", n, prios), func(b *testing.B) {
			var toml strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&toml, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\nstop_priority = %d\nstop_timeout = \"10s\"\n",
					i, 10*(1+i%prios))
			}
			cfg := benchConfig(b, "shutdown_timeout = \"60s\"\n"+toml.String())
			var total, worst time.Duration
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				spawned := 0
				sup.trace = func(what, _ string, _ time.Time) {
					if what == "spawn" {
						spawned++ // the loop goroutine only, before Ready
					}
				}
				ended := make(chan int, 1)
				go func() {
					code, err := sup.Run(context.Background())
					if err != nil {
						b.Error(err)
					}
					ended <- code
				}()
				<-sup.Ready()
				if spawned != n {
					b.Fatalf("%d programs spawned, want %d", spawned, n)
				}
				b.StartTimer()
				start := time.Now()
				sup.Shutdown("benchmark", 0)
				code := <-ended
				d := time.Since(start)
				b.StopTimer()
				if code != 0 {
					b.Fatalf("teardown ended with code %d, want 0 (budget exceeded?)", code)
				}
				total += d
				worst = max(worst, d)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/teardown")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}
