package supervisor

import (
	"math"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/ratelimit"
)

// output maps a program's stdout/stderr setting to the spawner's.
func (s *Supervisor) output(name, stream string, o conf.Output, lim *lineLimiter) procs.Output {
	switch o.Kind {
	case conf.OutputInherit:
		return procs.Output{Kind: procs.Inherit}
	case conf.OutputNull:
		return procs.Output{Kind: procs.Null}
	case conf.OutputFile:
		return procs.Output{Kind: procs.File, Path: o.Path}
	}
	log := s.log.With(zap.String("program", name), zap.String("stream", stream))
	lw := s.opts.Lines
	return procs.Output{Kind: procs.Lines, OnLine: func(line []byte, partial bool) {
		if lim != nil && lim.bucket != nil {
			ok, dropped := lim.take()
			if dropped > 0 {
				log.Warn("dropped lines above log_rate", zap.Uint64("dropped", dropped))
			}
			if !ok {
				return
			}
		}
		switch {
		case lw != nil:
			lw.WriteLine(name, stream, line, partial)
		case partial:
			log.Info(string(line), zap.Bool("partial", true))
		default:
			log.Info(string(line))
		}
	}}
}

// lineLimiter drops child output lines above log_rate per second and
// counts what it dropped, so the next kept line can report it.
type lineLimiter struct {
	mu       sync.Mutex
	clk      clock.Clock
	bucket   *ratelimit.Limiter
	dropped  uint64
	reported time.Time
}

func newLineLimiter(rate float64, burst int, clk clock.Clock) *lineLimiter {
	if burst <= 0 {
		burst = int(rate)
		if burst < 1 {
			burst = 1
		}
	}
	// rate is lines per second, possibly fractional: express it per 1000 s.
	n := int(math.Round(rate * 1000))
	if n < 1 {
		n = 1
	}
	b, err := ratelimit.New(n, 1000*time.Second, burst, ratelimit.WithClock(clk))
	if err != nil {
		return nil
	}
	return &lineLimiter{bucket: b, clk: clk}
}

// take reports whether a line may be logged and, at most every
// dropReportEvery, how many lines were dropped since the last report.
func (l *lineLimiter) take() (ok bool, droppedBefore uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.bucket.TryAcquire() {
		l.dropped++
		return false, 0
	}
	now := l.clk.Now()
	if l.dropped == 0 || now.Sub(l.reported) < dropReportEvery {
		return true, 0
	}
	d := l.dropped
	l.dropped, l.reported = 0, now
	return true, d
}

// flush returns the drops not yet reported (at the end of a run).
func (l *lineLimiter) flush() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.dropped
	l.dropped = 0
	return d
}

// dropReportEvery spaces the "dropped lines" entries, which would
// otherwise flood the log they protect.
const dropReportEvery = 5 * time.Second
