package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/supervise/supervise/supervisor/events"
)

// writeGroup bounds the bytes of replies written by one system call.
const writeGroup = 64 << 10

// Sender sends the replies of one request to its client. Send never
// waits for the client: replies are queued, at most SendBuffer bytes of
// them, and written by a goroutine of the connection with WriteTimeout
// per write (of a reply, or of replies queued together, up to 64 KiB). A
// client that falls further behind, or whose write fails,
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
	queued int           // bytes in queue
	unsent int           // bytes accepted and not yet written: queued and the batch being written
	wrote  chan struct{} // closed and replaced after each write, for WaitUnsent
	sent   int           // replies accepted
	err    error         // the stream's failure; Send returns it
	closed bool          // the final message is queued
	hurry  bool          // the server is closing: write with closeGrace
	// timeout replaces WriteTimeout when set; patient removes the limit.
	timeout time.Duration
	patient bool
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
	return s.queueReply(append(data, '\n'))
}

// SendEvent is Send(Response{OK: true, Event: ev}) for a stream of events,
// with the same bytes on the wire: the event's encoding, which a
// published event makes once for all its readers, is sent as it is
// rather than encoded again for each.
func (s *Sender) SendEvent(ev *events.Event) error {
	return s.queueReply(eventReply(ev))
}

// eventReplyStart and eventReplyEnd surround an event's encoding in the
// encoding of a reply message that carries it.
var (
	eventReplyStart = `{"v":` + strconv.Itoa(ProtocolVersion) + `,"type":"` + MsgReply + `","reply":{"ok":true,"event":`
	eventReplyEnd   = "}}\n"
)

func eventReply(ev *events.Event) []byte {
	js := ev.JSON()
	data := make([]byte, 0, len(eventReplyStart)+len(js)+len(eventReplyEnd))
	return append(append(append(data, eventReplyStart...), js...), eventReplyEnd...)
}

// queueReply queues one encoded reply message, newline included.
func (s *Sender) queueReply(data []byte) error {
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
	s.unsent += len(data)
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

// WaitUnsent waits until at most n bytes of the replies sent so far are
// not yet written to the client, so that a stream can pace itself on its
// client and keep what it has to drop in its own hands rather than fail
// with ErrSlowClient. It returns the stream's error once the stream has
// failed or closed, and ctx's error when ctx ends first.
func (s *Sender) WaitUnsent(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		switch {
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return err
		case s.closed:
			s.mu.Unlock()
			return ErrStreamClosed
		case s.unsent <= n:
			s.mu.Unlock()
			return nil
		}
		if s.wrote == nil {
			s.wrote = make(chan struct{})
		}
		wrote := s.wrote
		s.mu.Unlock()
		select {
		case <-wrote:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SetWriteTimeout replaces WriteTimeout for the writes that follow; d of
// 0 or less removes the limit, for a stream that paces itself on its
// client (WaitUnsent) and so holds a bounded amount for a client that
// pauses, such as a terminal scrolled back. A closing server still cuts
// every write short.
func (s *Sender) SetWriteTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeout, s.patient = d, d <= 0
}

// written accounts for n bytes written (or dropped) and wakes WaitUnsent.
func (s *Sender) written(n int) {
	s.mu.Lock()
	s.unsent = max(s.unsent-n, 0)
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
	s.mu.Unlock()
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
	s.queue, s.queued, s.unsent = nil, 0, 0
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
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
	var deadline time.Time
	switch {
	case s.hurry:
		deadline = time.Now().Add(closeGrace)
	case s.patient:
	case s.timeout > 0:
		deadline = time.Now().Add(s.timeout)
	default:
		deadline = time.Now().Add(WriteTimeout)
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
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
		empty := len(batch) == 0
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
		// Replies queued together are written together, a group of up to
		// writeGroup bytes per system call (and per WriteTimeout).
		for len(batch) > 0 {
			n, size := 0, 0
			for n < len(batch) && (n == 0 || size+len(batch[n]) <= writeGroup) {
				size += len(batch[n])
				n++
			}
			if !s.prepare() {
				return
			}
			group := net.Buffers(batch[:n])
			if _, err := group.WriteTo(s.conn); err != nil {
				s.mu.Lock()
				s.failLocked(fmt.Errorf("writing to the client: %w", err))
				s.mu.Unlock()
				return
			}
			s.written(size)
			batch = batch[n:]
		}
		switch {
		case closed && empty:
			return
		case !closed:
			<-s.wake
		}
	}
}
