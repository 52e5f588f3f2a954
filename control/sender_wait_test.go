package control

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// WaitUnsent lets a stream pace itself on a client that stops reading:
// it waits instead of letting the queue grow to ErrSlowClient, and goes
// on once the client reads again.
func TestWaitUnsentPacesOnTheClient(t *testing.T) {
	const chunk, limit = 64 << 10, 256 << 10
	blocked := make(chan int, 1)
	result := make(chan error, 1)
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			msg := Response{Message: strings.Repeat("x", chunk)}
			for n := 0; n < 400; n++ { // 25 MiB: three times SendBuffer
				waited := make(chan struct{})
				go func() {
					select {
					case <-waited:
					case <-time.After(300 * time.Millisecond):
						select {
						case blocked <- n:
						default:
						}
					}
				}()
				err := out.WaitUnsent(ctx, limit)
				close(waited)
				if err != nil {
					result <- err
					return err
				}
				if err := out.Send(msg); err != nil {
					result <- err
					return err
				}
			}
			result <- nil
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"v":1,"command":"follow"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	// Not reading: the handler waits, with far less than SendBuffer queued.
	select {
	case n := <-blocked:
		if n*chunk > SendBuffer/2 {
			t.Errorf("WaitUnsent let %d KiB through before waiting", n*chunk>>10)
		}
	case err := <-result:
		t.Fatalf("the handler ended (%v) with a client that reads nothing", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitUnsent never waited")
	}
	// Reading again lets it finish without ErrSlowClient.
	r := bufio.NewReaderSize(c, 1<<20)
	replies := 0
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			t.Fatalf("reading after %d replies: %v", replies, err)
		}
		if strings.Contains(string(line), `"type":"done"`) {
			break
		}
		replies++
	}
	if err := <-result; err != nil || replies != 400 {
		t.Fatalf("handler: %v after %d replies", err, replies)
	}
	noReports(t, reported)
}

// WaitUnsent returns the stream's failure, and ctx's end.
func TestWaitUnsentEnds(t *testing.T) {
	got := make(chan error, 2)
	srv, _ := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			out.Send(Response{Message: strings.Repeat("x", 1<<20)})
			got <- out.WaitUnsent(short, 0)
			<-ctx.Done()
			got <- out.WaitUnsent(context.Background(), 1<<30)
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"v":1,"command":"follow"}` + "\n"))
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitUnsent with an unread MiB = %v, want the deadline", err)
	}
	c.Close()
	if err := <-got; err == nil {
		t.Error("WaitUnsent after the client left = nil")
	}
}

// SetWriteTimeout changes the limit of a write to a client that reads
// nothing: a short one cuts the stream off, none keeps it waiting.
func TestSetWriteTimeout(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		cut     bool
	}{{100 * time.Millisecond, true}, {0, false}} {
		got := make(chan error, 1)
		srv, _ := serveStream(t, Handlers{
			"follow": func(ctx context.Context, req Request, out *Sender) error {
				out.SetWriteTimeout(c.timeout)
				chunk := Response{Message: strings.Repeat("x", 64<<10)}
				for range 64 { // 4 MiB: more than the socket holds
					if err := out.Send(chunk); err != nil {
						got <- err
						return nil
					}
				}
				wait, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				got <- out.WaitUnsent(wait, 0)
				<-ctx.Done()
				return nil
			},
			"one": Unary(func(context.Context, Request) Response { return Response{} }),
		})
		conn, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(`{"v":1,"command":"follow"}` + "\n"))
		err = <-got
		if cut := !errors.Is(err, context.DeadlineExceeded); cut != c.cut {
			t.Errorf("write timeout %v: WaitUnsent = %v, want the stream cut off: %v", c.timeout, err, c.cut)
		}
		conn.Close()
	}
}
