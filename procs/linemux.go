package procs

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// lineMux reads every Lines pipe of a Reaper in one goroutine, woken by
// epoll only when a pipe has data or hits EOF. Compared with a goroutine
// and a buffer per stream, an idle program's output then costs a few
// hundred bytes instead of kilobytes of stack and buffer, and nothing ever
// polls.
type lineMux struct {
	epfd int
	wake int // eventfd: commands are pending

	mu       sync.Mutex
	streams  map[int]*stream // by read fd; owned by the loop, guarded for add
	pending  []*stream       // added, not yet registered by the loop
	toClose  []*Process      // CloseOutput requests
	flushes  []flushReq      // drain requests of exited processes
	after    []func()        // flush callbacks due after the current round
	dirty    []*stream       // streams that delivered lines this round, with onRoundEnd
	stopping bool
	done     chan struct{}
	batch    func(begin bool) // may be nil
	pipes    *pipeBudget      // enlarges busy Lines pipes; may be nil
}

// flushReq asks to read p's pipes empty, then call fn.
type flushReq struct {
	p  *Process
	fn func()
}

// stream is one pipe's read end and its partial line; a Copy stream has
// a sink instead of onLine, and no line.
type stream struct {
	fd      int
	proc    *Process
	onLine  func([]byte, bool)
	sink    Sink
	release func() // called once the pipe is closed; may be nil
	round   func() // Output.OnRoundEnd; may be nil
	inRound bool   // in the mux's dirty list
	full    int    // reads in a row that filled the buffer
	big     bool   // enlarged by the mux: release its budget at the end
	acc     []byte // the line being assembled; nil while none is
}

func newLineMux(batch func(begin bool), pipes *pipeBudget) (*lineMux, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("procs: epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("procs: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("procs: epoll add: %w", err)
	}
	m := &lineMux{epfd: epfd, wake: wake, streams: map[int]*stream{}, done: make(chan struct{}), batch: batch, pipes: pipes}
	go m.loop()
	return m, nil
}

// add hands a non-blocking read end to the loop: a Lines stream (onLine)
// or a Copy stream (sink).
func (m *lineMux) add(fd int, p *Process, onLine func([]byte, bool), sink Sink, release, round func()) {
	m.mu.Lock()
	m.pending = append(m.pending, &stream{fd: fd, proc: p, onLine: onLine, sink: sink, release: release, round: round})
	m.mu.Unlock()
	m.poke()
}

// closeOutput asks the loop to close p's streams now.
func (m *lineMux) closeOutput(p *Process) {
	m.mu.Lock()
	m.toClose = append(m.toClose, p)
	m.mu.Unlock()
	m.poke()
}

// flush asks the loop to read everything p's pipes hold now and deliver
// it, then to call fn, after the round's lines have gone out (after the
// batch closes). Called once p has exited, it delivers every line p wrote.
func (m *lineMux) flush(p *Process, fn func()) {
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		fn()
		return
	}
	m.flushes = append(m.flushes, flushReq{p: p, fn: fn})
	m.mu.Unlock()
	m.poke()
}

// stop ends the loop after delivering what is buffered and closing every
// stream; it waits for the loop.
func (m *lineMux) stop() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.poke()
	<-m.done
}

func (m *lineMux) poke() {
	var one = [8]byte{1}
	unix.Write(m.wake, one[:])
}

func (m *lineMux) loop() {
	defer close(m.done)
	defer unix.Close(m.epfd)
	defer unix.Close(m.wake)
	buf := make([]byte, readSize)
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(m.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Unrecoverable: end every stream so nobody waits forever.
			m.closeAll()
			return
		}
		if m.batch != nil {
			m.batch(true)
		}
		stop := false
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == m.wake {
				var b [8]byte
				unix.Read(m.wake, b[:])
				stop = stop || m.commands()
				continue
			}
			if s := m.streams[fd]; s != nil {
				m.drain(s, buf)
			}
		}
		m.endRound()
		if m.batch != nil {
			m.batch(false)
		}
		m.runAfter()
		if stop {
			return
		}
	}
}

// commands registers new streams and carries out close requests; it
// reports whether the loop must stop.
func (m *lineMux) commands() (stop bool) {
	m.mu.Lock()
	pending, toClose, flushes, stopping := m.pending, m.toClose, m.flushes, m.stopping
	m.pending, m.toClose, m.flushes = nil, nil, nil
	m.mu.Unlock()
	for _, s := range pending {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(s.fd)}
		if err := unix.EpollCtl(m.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			m.finish(s)
			continue
		}
		m.streams[s.fd] = s
	}
	for _, p := range toClose {
		for _, s := range m.streams {
			if s.proc == p {
				m.finish(s)
			}
		}
	}
	for _, f := range flushes {
		for _, s := range m.streams {
			if s.proc == f.p {
				m.drainAll(s)
			}
		}
		m.after = append(m.after, f.fn)
	}
	if stopping {
		m.closeAll()
	}
	return stopping
}

// drainAll reads s until its pipe is empty (or at EOF). A descendant that
// keeps writing cannot hold it for longer than maxFlushReads reads.
func (m *lineMux) drainAll(s *stream) {
	var buf []byte
	if s.sink == nil {
		buf = make([]byte, 64<<10)
	}
	for i := 0; i < maxFlushReads; i++ {
		n, err := s.read(buf)
		switch {
		case n > 0 && s.sink != nil:
		case n > 0:
			s.split(buf[:n])
			m.touched(s)
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default:
			m.finish(s)
			return
		}
	}
}

// maxFlushReads bounds the reads of one flush (64 MiB of 64 KiB reads).
const maxFlushReads = 1024

// readSize is the buffer of a round's reads: a big pipe read whole.
// A first read of a round of at least busyRead bytes finds the pipe
// (nearly: pages are not always filled) full, at its default size;
// busyReads such rounds in a row make it big.
const (
	readSize  = bigPipeSize
	busyRead  = 48 << 10
	busyReads = 8
)

// touched notes that s delivered lines in this round.
func (m *lineMux) touched(s *stream) {
	if s.round != nil && !s.inRound {
		s.inRound = true
		m.dirty = append(m.dirty, s)
	}
}

// endRound calls the OnRoundEnd of the streams that delivered lines.
func (m *lineMux) endRound() {
	dirty := m.dirty
	m.dirty = m.dirty[:0]
	for _, s := range dirty {
		s.inRound = false
		s.round()
	}
}

// runAfter calls the flush callbacks of the round that just ended.
func (m *lineMux) runAfter() {
	after := m.after
	m.after = nil
	for _, fn := range after {
		fn()
	}
}

// drain reads what s has now. Level-triggered epoll reports it again if
// more is left, so one bounded round keeps the loop fair.
func (m *lineMux) drain(s *stream, buf []byte) {
	for i := 0; i < 4; i++ {
		n, err := s.read(buf)
		switch {
		case n > 0 && s.sink != nil:
		case n > 0:
			s.split(buf[:n])
			m.touched(s)
			if i == 0 {
				// A pipe found (nearly: a pipe's pages are not always
				// filled) full round after round is busy, its program
				// waiting for the reader: a larger pipe lets the program
				// write more per wakeup.
				if n < busyRead {
					s.full = 0
				} else if s.full++; s.full == busyReads && m.pipes != nil && !s.big {
					s.big = m.pipes.enlarge(s.fd)
				}
			}
			if n < len(buf) {
				return
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default: // EOF (n == 0) or a read error: the stream is over
			m.finish(s)
			return
		}
	}
}

// read reads s once: into buf for a Lines stream, through the sink for a
// Copy stream.
func (s *stream) read(buf []byte) (int, error) {
	if s.sink != nil {
		n, err := s.sink.Take(s.fd)
		if n < 0 { // a sink that passed on read(2)'s -1
			n = 0
		}
		return n, err
	}
	return unix.Read(s.fd, buf)
}

// finish delivers s's last partial line, closes it and tells its process.
func (m *lineMux) finish(s *stream) {
	if len(s.acc) > 0 && s.onLine != nil {
		s.onLine(s.acc, false)
		m.touched(s)
	}
	s.acc = nil
	unix.EpollCtl(m.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	unix.Close(s.fd)
	delete(m.streams, s.fd)
	if s.release != nil {
		s.release()
	}
	if s.big {
		m.pipes.release()
	}
	s.proc.readerDone()
}

func (m *lineMux) closeAll() {
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, s := range pending {
		m.finish(s)
	}
	for _, s := range m.streams {
		m.finish(s)
	}
	m.mu.Lock()
	flushes := m.flushes
	m.flushes = nil
	m.mu.Unlock()
	for _, f := range flushes {
		m.after = append(m.after, f.fn)
	}
	m.endRound()
	m.runAfter()
}

// split delivers the complete lines of chunk and keeps the rest in acc.
// Lines longer than MaxLine are cut into MaxLine pieces, all but the last
// delivered with partial = true.
func (s *stream) split(chunk []byte) {
	deliver := func(b []byte, partial bool) {
		if s.onLine != nil {
			s.onLine(b, partial)
		}
	}
	for len(chunk) > 0 {
		nl := bytes.IndexByte(chunk, '\n')
		seg := chunk
		if nl >= 0 {
			seg = chunk[:nl]
			chunk = chunk[nl+1:]
		} else {
			chunk = nil
		}
		// Cut what does not fit in one line.
		for len(s.acc)+len(seg) > MaxLine {
			k := MaxLine - len(s.acc)
			if len(s.acc) == 0 {
				deliver(seg[:k], true)
			} else {
				s.acc = append(s.acc, seg[:k]...)
				deliver(s.acc, true)
				s.acc = s.acc[:0]
			}
			seg = seg[k:]
		}
		if nl < 0 {
			s.acc = append(s.acc, seg...)
			break
		}
		if len(s.acc) == 0 {
			deliver(seg, false) // the common case: no copy
		} else {
			s.acc = append(s.acc, seg...)
			deliver(s.acc, false)
			s.acc = s.acc[:0]
		}
	}
	if len(s.acc) == 0 && cap(s.acc) > 4<<10 {
		s.acc = nil // give back what a long line needed
	}
}
