package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Sender sends the replies of one request to its client. Send never
// waits for the client: replies are queued, at most SendBuffer bytes of
// them, and written by a goroutine of the connection with WriteTimeout
// per message. A client that falls further behind, or whose write fails,
// ends the stream: Send returns the error from then on and the handler's
// context ends. Send is safe for concurrent use and may be called from
// any goroutine, including one that must never block, such as an event
// loop that hands new events to a stream's Sender.
type Sender struct {
	conn   *net.UnixConn
	stream bool
	cancel context.CancelCauseFunc
	wake   chan struct{} // capacity 1: something was queued
	taken  chan struct{} // capacity 1, made by Taken: the writer took the queue

	mu     sync.Mutex
	queue  [][]byte
	queued int   // bytes in queue
	sent   int   // replies accepted
	err    error // the stream's failure; Send returns it
	closed bool  // the final message is queued
	hurry  bool  // the server is closing: write with closeGrace
}

// Send queues r as a reply. It fails with ErrStreamClosed after the
// handler returned or the client went away, with ErrSlowClient when the
// client does not keep up, with the write error after a failed write, and
// when a unary command sends a second reply or a reply is larger than
// MaxMessageSize. Send encodes r before it returns, so r may be changed
// afterwards.
func (s *Sender) Send(r Response) error {
	data, err := json.Marshal(Message{Version: ProtocolVersion, Type: MsgReply, Reply: &r})
	if err != nil {
		return fmt.Errorf("control: encoding a reply: %w", err)
	}
	data = append(data, '\n')
	if len(data) > MaxMessageSize {
		return fmt.Errorf("control: a reply of %d bytes exceeds the limit of %d", len(data), MaxMessageSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return ErrStreamClosed
	case !s.stream && s.sent > 0:
		return errors.New("control: a unary command sends one reply")
	case s.queued > 0 && s.queued+len(data) > SendBuffer:
		s.failLocked(fmt.Errorf("%w: %d bytes waiting", ErrSlowClient, s.queued))
		return s.err
	}
	s.queue = append(s.queue, data)
	s.queued += len(data)
	s.sent++
	s.poke()
	return nil
}

// Queued returns the bytes of replies queued and not yet taken by the
// connection's writer. A handler that sends only while it is 0 has at most
// two replies under way (one being written, one queued) and never meets
// ErrSlowClient, whatever the client's pace: it keeps what it has not sent
// yet, or drops it, itself.
func (s *Sender) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Taken returns a channel that receives (it holds one signal, never
// blocking the writer) each time the writer takes the queued replies,
// after which Queued is 0 until the next Send.
func (s *Sender) Taken() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken == nil {
		s.taken = make(chan struct{}, 1)
	}
	return s.taken
}

func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// failLocked ends the stream with err: nothing more is written, and a
// write in progress is cut short.
func (s *Sender) failLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	s.queue, s.queued = nil, 0
	s.conn.SetWriteDeadline(time.Unix(1, 0))
	s.cancel(err)
	s.poke()
}

// fail ends the stream with err, as failLocked, unless the handler has
// returned: its final messages are then written, or fail on their own.
func (s *Sender) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.failLocked(err)
	}
}

// finish queues the final message; later Sends fail.
func (s *Sender) finish(m Message) {
	data, err := json.Marshal(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.err == nil {
		s.queue = append(s.queue, append(data, '\n'))
	}
	s.closed = true
	s.poke()
}

// serverClosing shortens the writes of a closing server to closeGrace.
func (s *Sender) serverClosing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hurry = true
	s.conn.SetWriteDeadline(time.Now().Add(closeGrace))
}

// prepare sets the write deadline of the next message, under the lock
// that failLocked and serverClosing take to change it, and reports false
// once the stream has failed.
func (s *Sender) prepare() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	d := WriteTimeout
	if s.hurry {
		d = closeGrace
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
		s.failLocked(fmt.Errorf("writing to the client: %w", err))
		return false
	}
	return true
}

// run writes queued messages until the final one is written or the
// stream fails.
func (s *Sender) run() {
	for {
		s.mu.Lock()
		batch, closed, failed := s.queue, s.closed, s.err != nil
		s.queue, s.queued = nil, 0
		if len(batch) > 0 && s.taken != nil {
			select {
			case s.taken <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
		if failed {
			return
		}
		for _, data := range batch {
			if !s.prepare() {
				return
			}
			if _, err := s.conn.Write(data); err != nil {
				s.mu.Lock()
				s.failLocked(fmt.Errorf("writing to the client: %w", err))
				s.mu.Unlock()
				return
			}
		}
		switch {
		case closed && len(batch) == 0:
			return
		case !closed:
			<-s.wake
		}
	}
}
