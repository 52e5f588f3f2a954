package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
)

func benchConfig(b *testing.B, toml string) *conf.Config {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "supervise.toml")
	if err := os.WriteFile(path, []byte("[supervisor]\nsocket = \"off\"\nwatch_config = false\n"+toml), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := conf.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkCrashRespawn measures the time from the reaper collecting a
// crashed program to the next spawn, with backoff_initial = 0. One op is
// one crash-respawn cycle; p50/p90/p99 are reported as metrics.
func BenchmarkCrashRespawn(b *testing.B) {
	cfg := benchConfig(b, `
[programs.crash]
command = ["/bin/false"]
restart = "always"
backoff_initial = "0s"
backoff_max = "0s"
min_uptime = "0s"
stdout = "null"
stderr = "null"
[programs.crash.breaker]
max_failures = 1000000000
`)
	sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lastExit time.Time
	var lat []time.Duration
	done := make(chan struct{})
	target := b.N
	sup.trace = func(what, name string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		switch what {
		case "exit":
			lastExit = at
		case "spawn":
			if !lastExit.IsZero() && len(lat) < target {
				lat = append(lat, at.Sub(lastExit))
				if len(lat) == target {
					close(done)
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	b.ResetTimer()
	go func() { sup.Run(ctx); close(ended) }()
	<-done
	b.StopTimer()
	cancel()
	<-ended
	reportPercentiles(b, lat)
}

// BenchmarkStartPrograms measures spawning N sleeping programs, from Run
// to every process started.
func BenchmarkStartPrograms(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var toml strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&toml, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\n", i)
			}
			cfg := benchConfig(b, toml.String())
			for i := 0; i < b.N; i++ {
				sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				ended := make(chan struct{})
				start := time.Now()
				go func() { sup.Run(ctx); close(ended) }()
				<-sup.Ready()
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/start-all")
				b.StopTimer()
				cancel()
				<-ended
				b.StartTimer()
			}
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
