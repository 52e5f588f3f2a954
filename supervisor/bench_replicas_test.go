package supervisor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkStartReplicas compares starting one program with replicas =
// 500 against starting 500 separate programs, from Run to every process
// spawned. Each op starts both, one after the other in alternating order,
// so that a machine whose load drifts weighs on both alike; it reports
// each one's mean (ms/start-replicas, ms/start-separate), their ratio, and
// the configurations' parsing and expansion (ms/parse-*).
func BenchmarkStartReplicas(b *testing.B) {
	const n = 500
	var separate strings.Builder
	for i := range n {
		fmt.Fprintf(&separate, "[programs.p%d]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\n", i)
	}
	replicated := fmt.Sprintf("[programs.p]\ncommand = [\"/bin/sleep\", \"1000\"]\nstdout = \"null\"\nstderr = \"null\"\nreplicas = %d\n", n)
	run := func(toml string) (parse, start time.Duration) {
		t0 := time.Now()
		cfg := benchConfig(b, toml)
		parse = time.Since(t0)
		if len(cfg.Order) != n {
			b.Fatalf("%d programs", len(cfg.Order))
		}
		sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan struct{})
		t1 := time.Now()
		go func() { sup.Run(ctx); close(ended) }()
		<-sup.Ready()
		start = time.Since(t1)
		cancel()
		<-ended
		return parse, start
	}
	var sep, rep, sepParse, repParse time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			p, s := run(separate.String())
			sepParse, sep = sepParse+p, sep+s
			p, s = run(replicated)
			repParse, rep = repParse+p, rep+s
		} else {
			p, s := run(replicated)
			repParse, rep = repParse+p, rep+s
			p, s = run(separate.String())
			sepParse, sep = sepParse+p, sep+s
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(sep), "ms/start-separate")
	b.ReportMetric(ms(rep), "ms/start-replicas")
	b.ReportMetric(float64(rep)/float64(sep), "replicas/separate")
	b.ReportMetric(ms(sepParse), "ms/parse-separate")
	b.ReportMetric(ms(repParse), "ms/parse-replicas")
}
