package supervisor

import "sync"

// mailbox is an unbounded FIFO of events for the event loop. Push never
// blocks, so the reaper, timers, watchers and socket handlers can always
// hand an event over, even while the loop itself is busy spawning (which
// takes the reaper's lock) — a bounded channel there could deadlock.
type mailbox struct {
	mu     sync.Mutex
	queue  []event
	signal chan struct{} // size 1: "the queue is not empty"
}

func newMailbox() *mailbox {
	return &mailbox{signal: make(chan struct{}, 1)}
}

func (m *mailbox) push(ev event) {
	m.mu.Lock()
	m.queue = append(m.queue, ev)
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

// drain takes every queued event.
func (m *mailbox) drain() []event {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queue
	m.queue = nil
	return q
}
