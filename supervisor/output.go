package supervisor

import (
	"math"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor/ratelimit"
)

// outputs is what the supervisor keeps of its programs' output (SPEC §14):
// the console writer, the kept lines and counts (logs), the log files it
// writes (files).
type outputs struct {
	lines LineWriter
	logs  *logStore
	files *fileSet
	stage *lineStage
	// widthOf is the configuration the console's name width was set
	// for; owned by the event loop.
	widthOf *conf.Config
}

func newOutputs(lw LineWriter, clk clock.Clock, log *zap.Logger) *outputs {
	if lw == nil {
		lw = zapLines{log}
	}
	return &outputs{lines: lw, logs: newLogStore(), files: newFileSet(clk, log), stage: &lineStage{}}
}

// close closes the log files once the programs are gone.
func (o *outputs) close() { o.files.close() }

// zapLines writes program lines as log entries, when no LineWriter is
// given (tests, embedders).
type zapLines struct{ log *zap.Logger }

func (z zapLines) WriteLine(program, stream string, line []byte, partial bool) time.Time {
	fields := []zap.Field{zap.String("program", program), zap.String("stream", stream)}
	if partial {
		fields = append(fields, zap.Bool("partial", true))
	}
	z.log.Info(string(line), fields...)
	return time.Now()
}

func (zapLines) SetNameWidth(int) {}

// output maps one of p's stdout/stderr settings to the spawner's, for run
// r (SPEC §14):
//
//   - "log": every line goes to the console writer and to p's kept lines,
//     both after log_rate.
//   - a file with log_max_size: the supervisor writes the file, unframed;
//     through a Copy output (no per-line work) unless log_rate or a
//     log_line probe applies, which need the lines.
//   - a file without log_max_size: the program appends to it itself.
//
// The lines are handled on the output reader's goroutine, never in the
// event loop.
func (s *Supervisor) output(p *program, r *run, stream string, o conf.Output) procs.Output {
	cfg := p.cfg()
	out := s.out
	pl := out.logs.prepare(cfg) // its notes say where the output goes
	switch {
	case o.Kind == conf.OutputInherit:
		return procs.Output{Kind: procs.Inherit}
	case o.Kind == conf.OutputNull:
		return procs.Output{Kind: procs.Null}
	case o.Kind == conf.OutputFile && !cfg.OwnsFile(o):
		return procs.Output{Kind: procs.File, Path: o.Path}
	}
	lim := r.limiter
	if o.Kind == conf.OutputFile {
		f := out.files.acquire(o.Path, cfg)
		release := func() { out.files.release(f) }
		if lim == nil && r.lines == nil {
			return procs.Output{Kind: procs.Copy, Sink: fileSink{f: f, pl: pl}, OnClose: release}
		}
		return procs.Output{Kind: procs.Lines, OnClose: release, OnLine: func(line []byte, partial bool) {
			if lim == nil || lim.allow() {
				f.writeLine(line, partial, pl)
			}
		}}
	}
	if out.widthOf != s.cfg {
		out.widthOf = s.cfg
		w := 0
		for _, name := range s.cfg.Order {
			w = max(w, len(name))
		}
		out.lines.SetNameWidth(w)
	}
	name, lw, ring, stage := p.name, out.lines, pl.ring, out.stage
	if cfg.LogBuffer == 0 {
		ring = nil
	}
	var flags uint32
	if stream == "stderr" {
		flags = ringStderr
	}
	return procs.Output{Kind: procs.Lines, OnRoundEnd: stage.publish, OnLine: func(line []byte, partial bool) {
		if lim != nil && !lim.allow() {
			return
		}
		at := lw.WriteLine(name, stream, line, partial)
		if ring != nil {
			f := flags
			if partial {
				f |= ringPartial
			}
			stage.add(ring, at.UnixNano(), f, line)
		}
	}}
}

// lineStage gathers the lines of a read round for the rings, which get
// them at the round's end (publish, procs.Output.OnRoundEnd) with one
// lock and one wakeup of their readers per ring, instead of one per line.
// It is used only by the goroutine that reads every Lines output: all
// the rings share it.
type lineStage struct {
	buf  []byte
	ents []stagedLine
}

type stagedLine struct {
	ring  *lineRing
	ts    int64
	flags uint32
	n     int
}

// A stage publishes early once it holds stageFlushAt bytes or
// stageFlushLines lines.
const (
	stageFlushAt    = 256 << 10
	stageFlushLines = 8192
)

func (st *lineStage) add(r *lineRing, ts int64, flags uint32, line []byte) {
	st.buf = append(st.buf, line...)
	st.ents = append(st.ents, stagedLine{ring: r, ts: ts, flags: flags, n: len(line)})
	if len(st.buf) >= stageFlushAt || len(st.ents) >= stageFlushLines {
		st.publish()
	}
}

// publish hands the gathered lines to their rings, in order.
func (st *lineStage) publish() {
	off := 0
	for i := 0; i < len(st.ents); {
		r := st.ents[i].ring
		r.mu.Lock()
		for ; i < len(st.ents) && st.ents[i].ring == r; i++ {
			e := st.ents[i]
			r.addLocked(e.ts, e.flags, st.buf[off:off+e.n])
			off += e.n
		}
		r.notifyLocked()
		r.mu.Unlock()
	}
	clear(st.ents) // no ring stays reachable from here
	st.buf, st.ents = st.buf[:0], st.ents[:0]
	if cap(st.buf) > 4*stageFlushAt {
		st.buf = nil
	}
}

// consoleOutput sends the lines of stream of a command that is no program
// (a teardown step) to the console, unkept and unlimited. It may be
// called off the event loop.
func (s *Supervisor) consoleOutput(name, stream string) procs.Output {
	lw := s.out.lines
	return procs.Output{Kind: procs.Lines, OnLine: func(line []byte, partial bool) {
		lw.WriteLine(name, stream, line, partial)
	}}
}

// newLimiter returns the log_rate limiter of a run of p, nil without
// log_rate. Its summaries of dropped lines go to p's log entries and to
// its kept lines, at most once per dropReportEvery.
func (s *Supervisor) newLimiter(p *program) *lineLimiter {
	cfg := p.cfg()
	if cfg.LogRate <= 0 {
		return nil
	}
	pl := s.out.logs.prepare(cfg)
	log := p.log
	return newLineLimiter(cfg.LogRate, cfg.EffectiveLogBurst(), s.clk, func(dropped uint64) {
		log.Warn("dropped lines above log_rate", zap.Uint64("dropped", dropped))
		pl.ring.add(s.clk.Now().UnixNano(), ringDropped, strconv.AppendUint(nil, dropped, 10))
	}, &pl.droppedLines)
}

// lineLimiter drops output lines above log_rate per second, counts them,
// and reports the count (report) at most once per dropReportEvery, from a
// timer, so a burst followed by silence is reported too. allow is called
// by the output reader of both streams of a run; the timer and finish run
// elsewhere, hence the lock.
type lineLimiter struct {
	clk    clock.Clock
	report func(dropped uint64)
	total  interface{ Add(uint64) uint64 }

	mu       sync.Mutex
	bucket   *ratelimit.Limiter
	dropped  uint64 // since the last report
	reported time.Time
	timer    clock.Timer // the report due; nil while none is
	done     bool
}

func newLineLimiter(rate float64, burst int, clk clock.Clock, report func(uint64), total interface{ Add(uint64) uint64 }) *lineLimiter {
	if burst <= 0 {
		burst = max(int(rate), 1)
	}
	// rate is lines per second, possibly fractional: express it per 1000 s.
	n := max(int(math.Round(rate*1000)), 1)
	b, err := ratelimit.New(n, 1000*time.Second, burst, ratelimit.WithClock(clk))
	if err != nil {
		return nil
	}
	return &lineLimiter{bucket: b, clk: clk, report: report, total: total}
}

// allow reports whether a line may be kept; a dropped line is counted and
// its report scheduled.
func (l *lineLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bucket.TryAcquire() {
		return true
	}
	l.dropped++
	l.total.Add(1)
	if l.timer == nil && !l.done {
		wait := max(dropReportEvery-l.clk.Now().Sub(l.reported), 0)
		l.timer = l.clk.AfterFunc(wait, l.fire)
	}
	return false
}

func (l *lineLimiter) fire() {
	l.mu.Lock()
	d := l.dropped
	l.dropped, l.timer, l.reported = 0, nil, l.clk.Now()
	l.mu.Unlock()
	if d > 0 {
		l.report(d)
	}
}

// finish reports the drops not reported yet, at the end of a run, and
// stops the timer.
func (l *lineLimiter) finish() {
	l.mu.Lock()
	l.done = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	d := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if d > 0 {
		l.report(d)
	}
}

// dropReportEvery spaces the "dropped lines" summaries of a program,
// which would otherwise flood the log they protect.
const dropReportEvery = time.Second
