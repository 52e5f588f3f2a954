package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Subscriber.Next once the Bus has closed and
// every event before was read.
var ErrClosed = errors.New("events: the event stream has ended")

// MatchProgram reports whether an event of program concerns one of names:
// the program itself or, for a name without an instance suffix, any of
// its instances ("web" matches "web" and "web:2"). No names match every
// event, the supervisor's own (program "") included; with names, the
// supervisor's own events match none.
func MatchProgram(names []string, program string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if program == n || (len(program) > len(n) && program[len(n)] == ':' && strings.HasPrefix(program, n)) {
			return true
		}
	}
	return false
}

// Subscriber is one reader's buffer: the Bus appends to it, the reader
// takes batches with Next. It holds at most its size of events; what
// arrives while it is full is counted as lost. Its methods are safe for
// concurrent use by the Bus's owner and one reader.
type Subscriber struct {
	names []string
	size  int
	wake  chan struct{} // capacity 1: something arrived, or the bus closed

	mu    sync.Mutex
	buf   []*Event
	spare []*Event // the slice the reader handed back, reused
	lost  uint64
	held  bool        // events arrived and the reader was not woken yet
	ended bool        // the bus closed: no more events
	gone  atomic.Bool // the reader left: the bus drops it
}

// NewSubscriber returns a reader's buffer for the events of the programs
// named (see MatchProgram), holding at most size events (at least 1).
func NewSubscriber(names []string, size int) *Subscriber {
	return &Subscriber{names: append([]string(nil), names...), size: max(size, 1), wake: make(chan struct{}, 1)}
}

// offer adds ev unless the buffer is full; it never blocks. The reader
// is woken by the next Flush, or at once when its buffer is half full.
func (s *Subscriber) offer(ev *Event) {
	if !MatchProgram(s.names, ev.Program) {
		return
	}
	s.mu.Lock()
	if len(s.buf) >= s.size {
		s.lost++
	} else {
		if s.buf == nil {
			s.buf, s.spare = s.spare[:0], nil
		}
		s.buf = append(s.buf, ev)
	}
	now := len(s.buf) >= (s.size+1)/2
	s.held = !now
	s.mu.Unlock()
	if now {
		s.poke()
	}
}

func (s *Subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// flush wakes the reader if events wait for it.
func (s *Subscriber) flush() {
	s.mu.Lock()
	held := s.held
	s.held = false
	s.mu.Unlock()
	if held {
		s.poke()
	}
}

func (s *Subscriber) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
}

// Next waits until events arrive and returns them in order, with the
// number of events lost after the last of them: those that arrived while
// the buffer was full. The events that follow the loss come in the next
// batch. It returns ErrClosed once the bus has closed and
// everything was read, and ctx's error when ctx ends first. The batch is
// the reader's until its next call of Next, which may reuse it.
func (s *Subscriber) Next(ctx context.Context, prev []*Event) (batch []*Event, lost uint64, err error) {
	for {
		s.mu.Lock()
		if prev != nil && s.spare == nil {
			clear(prev)
			s.spare, prev = prev[:0], nil
		}
		batch, lost = s.buf, s.lost
		s.buf, s.lost = nil, 0
		ended := s.ended
		s.mu.Unlock()
		if len(batch) > 0 || lost > 0 {
			return batch, lost, nil
		}
		if ended {
			return nil, 0, ErrClosed
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// Close says the reader has left: the bus stops offering it events.
func (s *Subscriber) Close() { s.gone.Store(true) }

// Bus hands events to subscribers and numbers and counts them. Its
// methods other than Count are for one owner only, such as an event loop;
// Count is safe for concurrent use. The zero Bus is ready.
type Bus struct {
	subs   []*Subscriber
	seq    uint64
	counts [numKinds]atomic.Uint64
	closed bool
}

// Stamp counts an event of kind k and returns its sequence number. Every
// event the owner produces is stamped, read or not, so that the numbers
// have no gaps; it does not allocate.
func (b *Bus) Stamp(k Kind) uint64 {
	b.seq++
	if k < numKinds {
		b.counts[k].Add(1)
	}
	return b.seq
}

// Active reports whether any subscriber may want events: when it does
// not, the owner need not build them.
func (b *Bus) Active() bool { return len(b.subs) > 0 }

// Publish offers ev, stamped, to every subscriber whose reader is still
// there; it never blocks. ev must not be changed afterwards. The readers
// are woken by Flush: an owner that publishes a burst of events wakes
// each reader once, not once per event.
func (b *Bus) Publish(ev *Event) {
	if len(b.subs) > 1 && ev.enc == nil {
		ev.enc = &encoding{}
	}
	gone := false
	for _, s := range b.subs {
		if s.gone.Load() {
			gone = true
			continue
		}
		s.offer(ev)
	}
	if gone {
		b.prune()
	}
}

// prune forgets the subscribers whose readers left.
func (b *Bus) prune() {
	keep := b.subs[:0]
	for _, s := range b.subs {
		if !s.gone.Load() {
			keep = append(keep, s)
		}
	}
	clear(b.subs[len(keep):])
	b.subs = keep
}

// Flush wakes the readers that have events waiting. An event loop calls
// it at the end of each round of work; a reader whose buffer is half full
// is woken without waiting for it.
func (b *Bus) Flush() {
	for _, s := range b.subs {
		s.flush()
	}
}

// Subscribe adds s; after Close, s ends at once.
func (b *Bus) Subscribe(s *Subscriber) {
	if b.closed {
		s.end()
		return
	}
	b.prune()
	b.subs = append(b.subs, s)
}

// Subscribers returns the number of subscribers whose readers are there.
func (b *Bus) Subscribers() int {
	b.prune()
	return len(b.subs)
}

// Close ends every subscriber: its reader gets what is buffered, then
// ErrClosed. Later subscribers end at once.
func (b *Bus) Close() {
	b.closed = true
	for _, s := range b.subs {
		s.end()
	}
	b.subs = nil
}

// Count returns the number of events of kind k stamped so far.
func (b *Bus) Count(k Kind) uint64 {
	if k >= numKinds {
		return 0
	}
	return b.counts[k].Load()
}
