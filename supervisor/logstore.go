package supervisor

import (
	"container/heap"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
)

// logStore holds, by program name, what the supervisor keeps of each
// program's output (SPEC §14): its last lines and its counts of output
// lost. The output readers add lines, the event loop makes an entry when
// it spawns a program and drops it with the program, and the handlers of
// `supervise logs` read, all concurrently: its methods, and those of the
// entries, are safe for concurrent use. Lines never pass through the
// event loop.
type logStore struct {
	mu    sync.Mutex
	progs map[string]*progLog
	gen   uint64          // counts changes of progs
	subs  []chan struct{} // readers woken by a change of progs
}

// progLog is one program's entry of the logStore.
type progLog struct {
	name string
	ring *lineRing // holds nothing while log_buffer = 0
	// droppedLines were above log_rate; droppedBytes could not be
	// written to the program's log file, whose error fileErr holds
	// (nil once a write succeeds again).
	droppedLines atomic.Uint64
	droppedBytes atomic.Uint64
	fileErr      atomic.Pointer[string]
	// notes say where the outputs that are not kept go.
	notes atomic.Pointer[[]string]
}

func newLogStore() *logStore { return &logStore{progs: map[string]*progLog{}} }

// prepare returns the entry of program cfg, made if needed, with the
// settings of cfg: called by the event loop as it spawns the program.
func (ls *logStore) prepare(cfg *conf.Program) *progLog {
	ls.mu.Lock()
	pl := ls.progs[cfg.Name]
	if pl == nil {
		pl = &progLog{name: cfg.Name, ring: newLineRing(cfg.LogBuffer, conf.MaxLogBufferBytes)}
		ls.progs[cfg.Name] = pl
		ls.changedLocked()
	}
	ls.mu.Unlock()
	pl.ring.setMaxLines(cfg.LogBuffer)
	var notes []string
	for _, o := range []struct {
		stream string
		out    conf.Output
	}{{"stdout", cfg.Stdout}, {"stderr", cfg.Stderr}} {
		switch o.out.Kind {
		case conf.OutputFile:
			notes = append(notes, cfg.Name+": "+o.stream+" goes to "+o.out.Path)
		case conf.OutputInherit:
			notes = append(notes, cfg.Name+": "+o.stream+" goes to the supervisor's own "+o.stream)
		case conf.OutputNull:
			notes = append(notes, cfg.Name+": "+o.stream+" is discarded (null)")
		}
	}
	if cfg.LogBuffer == 0 && (cfg.Stdout.Kind == conf.OutputLog || cfg.Stderr.Kind == conf.OutputLog) {
		notes = append(notes, cfg.Name+": log_buffer = 0 keeps no lines")
	}
	pl.notes.Store(&notes)
	return pl
}

// get returns the entry of name, nil if it has none.
func (ls *logStore) get(name string) *progLog {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.progs[name]
}

// forget drops the entry of a removed program.
func (ls *logStore) forget(name string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.progs[name] != nil {
		delete(ls.progs, name)
		ls.changedLocked()
	}
}

func (ls *logStore) changedLocked() {
	ls.gen++
	for _, c := range ls.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// snapshot returns the entries and the count of changes they reflect.
func (ls *logStore) snapshot() (uint64, map[string]*progLog) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	m := make(map[string]*progLog, len(ls.progs))
	for k, v := range ls.progs {
		m[k] = v
	}
	return ls.gen, m
}

func (ls *logStore) subscribe(c chan struct{}) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.subs = append(ls.subs, c)
}

func (ls *logStore) unsubscribe(c chan struct{}) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if i := slices.Index(ls.subs, c); i >= 0 {
		ls.subs = slices.Delete(ls.subs, i, i+1)
	}
}

// outputStatus is the output part of name's status row; nil before the
// program was first spawned.
func (ls *logStore) outputStatus(name string) *control.OutputStatus {
	pl := ls.get(name)
	if pl == nil {
		return nil
	}
	st := &control.OutputStatus{DroppedLines: pl.droppedLines.Load(), DroppedBytes: pl.droppedBytes.Load()}
	if e := pl.fileErr.Load(); e != nil {
		st.FileError = *e
	}
	return st
}

// logReader reads the kept lines of some programs (or all) merged by time,
// for one `supervise logs` request, and follows new ones. It is used by
// one goroutine, the request's handler.
type logReader struct {
	store *logStore
	// names are the programs asked for, nil for all: an instance
	// (NAME:i), a program without replicas, or a program with replicas,
	// which stands for every instance of it, including those a scale or
	// a reload adds while the reader follows.
	names []string
	srcs  []*logSource
	gen   uint64
	width int           // the longest name read
	wake  chan struct{} // signalled by new lines and by changes of the store
}

// logSource is one program's part of a logReader: the next line to read
// and the lines read ahead for the merge.
type logSource struct {
	pl   *progLog
	next uint64
	buf  []control.LogLine
}

// Limits of one reply of `supervise logs`.
const (
	logChunkLines = 2000
	logChunkBytes = 512 << 10
	logReadAhead  = 64 // lines read from a ring at a time
)

func newLogReader(store *logStore, names []string) *logReader {
	r := &logReader{store: store, names: names, wake: make(chan struct{}, 1)}
	store.subscribe(r.wake)
	r.gen, _ = store.snapshot()
	r.gen-- // resolve on the first call
	return r
}

// close stops the wakeups.
func (r *logReader) close() {
	r.store.unsubscribe(r.wake)
	for _, s := range r.srcs {
		s.pl.ring.unsubscribe(r.wake)
	}
}

// resolve follows changes of the store: a program that appears (added by
// a reload, or spawned for the first time) is read from its first line.
func (r *logReader) resolve() {
	gen, m := r.store.snapshot()
	if gen == r.gen {
		return
	}
	r.gen = gen
	for _, name := range r.matching(m) {
		pl := m[name]
		if pl == nil || slices.ContainsFunc(r.srcs, func(s *logSource) bool { return s.pl == pl }) {
			continue
		}
		pl.ring.subscribe(r.wake)
		first, _ := pl.ring.bounds()
		r.srcs = append(r.srcs, &logSource{pl: pl, next: first})
		r.width = max(r.width, len(name))
	}
}

// matching returns the names of the entries of m that r reads, in the
// order of r.names (a program's instances by index), or sorted for all.
func (r *logReader) matching(m map[string]*progLog) []string {
	var all []string
	for name := range m {
		all = append(all, name)
	}
	slices.SortFunc(all, lessName)
	if r.names == nil {
		return all
	}
	var out []string
	for _, sel := range r.names {
		for _, name := range all {
			if base, _, ok := conf.SplitInstance(name); name == sel || ok && base == sel {
				out = append(out, name)
			}
		}
	}
	return out
}

// start places the sources at the first line at or after since (all when
// zero) and then, with n >= 0, at the last n lines of the merge.
func (r *logReader) start(since time.Time, n int) {
	for _, s := range r.srcs {
		if !since.IsZero() {
			s.next = s.pl.ring.firstSince(since.UnixNano())
		}
	}
	if n < 0 {
		return
	}
	// Walk back from the newest lines, newest first across sources.
	h := &backHeap{}
	for i, s := range r.srcs {
		_, end := s.pl.ring.bounds()
		lo := s.next
		s.next = end
		if end > lo {
			if ts, ok := s.pl.ring.tsAt(end - 1); ok {
				heap.Push(h, backItem{src: i, lo: lo, ts: ts})
			}
		}
	}
	for taken := 0; taken < n && h.Len() > 0; taken++ {
		it := heap.Pop(h).(backItem)
		s := r.srcs[it.src]
		s.next--
		if s.next > it.lo {
			if ts, ok := s.pl.ring.tsAt(s.next - 1); ok {
				it.ts = ts
				heap.Push(h, it)
			}
		}
	}
}

// collect returns the next lines of the merge, in time order, up to the
// limits of one reply: markers of lines lost where a source fell behind.
func (r *logReader) collect() []control.LogLine {
	h := &frontHeap{}
	for i, s := range r.srcs {
		if r.fill(s) {
			heap.Push(h, frontItem{src: i, ts: s.buf[0].TS})
		}
	}
	var out []control.LogLine
	bytes := 0
	for h.Len() > 0 && len(out) < logChunkLines && bytes < logChunkBytes {
		it := (*h)[0]
		s := r.srcs[it.src]
		l := s.buf[0]
		s.buf = s.buf[1:]
		out = append(out, l)
		bytes += len(l.Line) + 64
		if r.fill(s) {
			(*h)[0].ts = s.buf[0].TS
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return out
}

// fill reads ahead from s's ring when s has nothing read, and reports
// whether s has a line to give.
func (r *logReader) fill(s *logSource) bool {
	if len(s.buf) > 0 {
		return true
	}
	s.buf = s.buf[:0]
	name := s.pl.name
	next, skipped := s.pl.ring.read(s.next, logReadAhead, func(_ uint64, ts int64, flags uint32, line []byte) {
		at := time.Unix(0, ts)
		if flags&ringDropped != 0 {
			n, _ := strconv.ParseUint(string(line), 10, 64)
			s.buf = append(s.buf, control.DroppedLine(at, name, n))
			return
		}
		l := control.LogLine{TS: at, Program: name, Stream: "stdout", Line: string(line), Partial: flags&ringPartial != 0}
		if flags&ringStderr != 0 {
			l.Stream = "stderr"
		}
		s.buf = append(s.buf, l)
	})
	if skipped > 0 {
		at := time.Now()
		if len(s.buf) > 0 {
			at = s.buf[0].TS
		}
		s.buf = slices.Insert(s.buf, 0, control.SkippedLine(at, name, skipped))
	}
	s.next = next
	return len(s.buf) > 0
}

// notes gathers what the programs asked for by name (every instance of
// a program with replicas) cannot show.
func (r *logReader) notes() []string {
	if r.names == nil {
		return nil
	}
	_, m := r.store.snapshot()
	var out []string
	for _, name := range r.matching(m) {
		if n := m[name].notes.Load(); n != nil {
			out = append(out, *n...)
		}
	}
	return out
}

// backItem is a source in the walk back of start: ts is the time of the
// line before its cursor, lo the cursor's floor.
type backItem struct {
	src int
	lo  uint64
	ts  int64
}

// backHeap pops the newest line first; of equal times, the one the
// forward merge gives last (the higher source).
type backHeap []backItem

func (h backHeap) Len() int { return len(h) }
func (h backHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts > h[j].ts
	}
	return h[i].src > h[j].src
}
func (h backHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *backHeap) Push(x any)   { *h = append(*h, x.(backItem)) }
func (h *backHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// frontItem is a source in the merge of collect, by the time of its next
// line.
type frontItem struct {
	src int
	ts  time.Time
}

// frontHeap pops the oldest line first; of equal times, the lower source.
type frontHeap []frontItem

func (h frontHeap) Len() int { return len(h) }
func (h frontHeap) Less(i, j int) bool {
	if !h[i].ts.Equal(h[j].ts) {
		return h[i].ts.Before(h[j].ts)
	}
	return h[i].src < h[j].src
}
func (h frontHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frontHeap) Push(x any)   { *h = append(*h, x.(frontItem)) }
func (h *frontHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
