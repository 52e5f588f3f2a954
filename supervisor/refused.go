package supervisor

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// refusedEvery is how often refused input of one source is logged at
// most; what is refused in between is counted and reported with the next
// entry, so a flood cannot fill the log it is reported in.
const refusedEvery = time.Second

// refusals rate-limits the log entries of refused input per source.
type refusals struct {
	mu   sync.Mutex
	seen map[string]*refusedSource
}

type refusedSource struct {
	logged     time.Time
	suppressed uint64
}

// refused logs input refused from source (a datagram from a stranger,
// garbage on a socket, a request from another uid) with its cause, at most
// once per refusedEvery per source. It is safe for concurrent use.
func (s *Supervisor) refused(source string, err error) {
	now := s.clk.Now()
	r := &s.refusals
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]*refusedSource{}
	}
	rs := r.seen[source]
	if rs == nil {
		if len(r.seen) > 1024 {
			clear(r.seen) // a source per peer must not grow without bound
		}
		rs = &refusedSource{}
		r.seen[source] = rs
	}
	if !rs.logged.IsZero() && now.Sub(rs.logged) < refusedEvery {
		rs.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := rs.suppressed
	rs.logged, rs.suppressed = now, 0
	r.mu.Unlock()
	fields := []zap.Field{zap.String("source", source), zap.Error(err)}
	if suppressed > 0 {
		fields = append(fields, zap.Uint64("also_refused_since_last_entry", suppressed))
	}
	s.log.Warn("refused input", fields...)
}
