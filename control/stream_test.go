package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamReg has a streaming command and a unary one, served by tests the
// way logs -f and events will be.
var streamReg = MustRegistry(
	&Command{Name: "follow", Summary: "stream replies", Stream: true,
		Flags: []Flag{{Name: "count", Value: "N", Kind: KindCount, Remote: true}}},
	&Command{Name: "one", Summary: "one reply"},
)

// serveStream serves hs for streamReg on a fresh socket until the test
// ends; errors the server reports go to the returned channel.
func serveStream(t *testing.T, hs Handlers, setup ...func(*Server)) (*Server, chan error) {
	t.Helper()
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv.reg = streamReg
	for _, f := range setup {
		f(srv)
	}
	reported := make(chan error, 100)
	srv.SetErrorHandler(func(err error) {
		select {
		case reported <- err:
		default:
		}
	})
	startServing(t, srv, hs)
	return srv, reported
}

func noReports(t *testing.T, reported chan error) {
	t.Helper()
	select {
	case err := <-reported:
		t.Errorf("reported %v", err)
	default:
	}
}

// A stream carries many replies in order and ends with done, and it may
// last longer than the time allowed for sending the request.
func TestStreamManyReplies(t *testing.T) {
	release := make(chan struct{})
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			var n int
			fmt.Sscan(req.Param("count"), &n)
			if err := out.Send(Response{Message: "first"}); err != nil {
				return err
			}
			<-release
			for i := range n {
				if err := out.Send(Response{Message: fmt.Sprint(i)}); err != nil {
					return err
				}
			}
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{OK: true} }),
	}, func(s *Server) { s.timeout = 50 * time.Millisecond })
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	var got []string
	err := Do(context.Background(), srv.Path(), Request{Command: "follow", Params: map[string]string{"count": "2000"}}, func(r Response) error {
		got = append(got, r.Message)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2001 || got[0] != "first" || got[1] != "0" || got[2000] != "1999" {
		t.Fatalf("got %d replies: %.5q...", len(got), got)
	}
	noReports(t, reported)
}

// A client that goes away ends the handler's context, and that is no
// failure worth reporting.
func TestStreamClientGoesAway(t *testing.T) {
	ended := make(chan error, 1)
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			out.Send(Response{Message: "hello"})
			<-ctx.Done()
			ended <- context.Cause(ctx)
			// Sends after the client left fail at once.
			if err := out.Send(Response{Message: "late"}); err == nil {
				t.Error("Send to a client that went away succeeded")
			}
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	stop := errors.New("stop")
	err := Do(context.Background(), srv.Path(), Request{Command: "follow"}, func(Response) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("Do = %v, want the callback's error", err)
	}
	select {
	case cause := <-ended:
		if !errors.Is(cause, ErrClientGone) {
			t.Errorf("handler context ended by %v, want the client going away", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context did not end when the client went away")
	}
	noReports(t, reported)
}

// Closing the server ends every stream's context; Close waits for the
// handlers, and the client gets the end of its stream.
func TestStreamServerClose(t *testing.T) {
	entered := make(chan struct{})
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv.reg = streamReg
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(context.Background(), Handlers{
			"follow": func(ctx context.Context, req Request, out *Sender) error {
				out.Send(Response{Message: "hello"})
				close(entered)
				<-ctx.Done()
				return errors.New("the supervisor is shutting down")
			},
			"one": Unary(func(context.Context, Request) Response { return Response{} }),
		})
	}()
	done := make(chan error, 1)
	go func() {
		done <- Do(context.Background(), srv.Path(), Request{Command: "follow"}, func(Response) error { return nil })
	}()
	<-entered
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	var re *RemoteError
	if err := <-done; !errors.As(err, &re) || re.Msg != "the supervisor is shutting down" {
		t.Errorf("Do = %v, want the stream's final error", err)
	}
}

// A client that reads nothing never blocks Send: the replies that would
// wait beyond SendBuffer end the stream with ErrSlowClient, which is
// reported with the peer.
func TestSlowClient(t *testing.T) {
	result := make(chan error, 1)
	sends := make(chan int, 1)
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			chunk := Response{Message: strings.Repeat("x", 64<<10)}
			var err error
			n := 0
			for ; err == nil && n < 10_000; n++ {
				err = out.Send(chunk)
			}
			sends <- n
			result <- err
			<-ctx.Done()
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte(`{"v":1,"command":"follow"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	// Never read.
	select {
	case err := <-result:
		n := <-sends
		if !errors.Is(err, ErrSlowClient) {
			t.Fatalf("Send to a client that does not read = %v after %d sends, want ErrSlowClient", err, n)
		}
		// The queue holds SendBuffer; the writer may hold as much again,
		// taken from the queue just before and blocked in its write; the
		// socket's own buffer holds the rest.
		if max := 2*SendBuffer/(64<<10) + 64; n > max {
			t.Errorf("%d sends accepted, want at most about %d", n, max)
		}
		t.Logf("cut off after %d sends of 64 KiB in %v", n, time.Since(start))
	case <-time.After(WriteTimeout / 2):
		t.Fatal("Send blocked on a client that does not read")
	}
	select {
	case err := <-reported:
		var pe *PeerError
		if !errors.Is(err, ErrSlowClient) || !errors.As(err, &pe) || pe.PID != os.Getpid() || pe.Command != "follow" {
			t.Errorf("reported %v, want ErrSlowClient naming pid %d and the command", err, os.Getpid())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow client was not reported")
	}
}

// Several goroutines may send on one stream; every reply arrives once.
func TestSendConcurrent(t *testing.T) {
	srv, _ := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 250 {
						if err := out.Send(Response{Message: fmt.Sprintf("%d-%d", g, i)}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	seen := map[string]bool{}
	err := Do(context.Background(), srv.Path(), Request{Command: "follow"}, func(r Response) error {
		if seen[r.Message] {
			return fmt.Errorf("%s twice", r.Message)
		}
		seen[r.Message] = true
		return nil
	})
	if err != nil || len(seen) != 1000 {
		t.Fatalf("Do = %v with %d distinct replies, want 1000", err, len(seen))
	}
}

// A unary command sends one reply; a Sender kept past its handler fails.
func TestSenderLimits(t *testing.T) {
	kept := make(chan *Sender, 1)
	second := make(chan error, 1)
	srv, _ := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error { kept <- out; return nil },
		"one": func(ctx context.Context, req Request, out *Sender) error {
			out.Send(Response{OK: true, Message: "only"})
			second <- out.Send(Response{OK: true, Message: "again"})
			return nil
		},
	})
	resp, err := Call(context.Background(), srv.Path(), Request{Command: "one"})
	if err != nil || resp.Message != "only" {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
	if err := <-second; err == nil || !strings.Contains(err.Error(), "one reply") {
		t.Errorf("second Send of a unary command = %v", err)
	}
	if err := Do(context.Background(), srv.Path(), Request{Command: "follow"}, func(Response) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := (<-kept).Send(Response{}); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("Send after the handler returned = %v, want ErrStreamClosed", err)
	}
}

// Data after the request of a stream ends it, and is reported.
func TestStreamDataAfterRequest(t *testing.T) {
	ended := make(chan error, 1)
	srv, reported := serveStream(t, Handlers{
		"follow": func(ctx context.Context, req Request, out *Sender) error {
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return nil
		},
		"one": Unary(func(context.Context, Request) Response { return Response{} }),
	})
	for _, late := range []bool{false, true} {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		if late {
			c.Write([]byte(`{"v":1,"command":"follow"}` + "\n"))
			time.Sleep(10 * time.Millisecond)
			c.Write([]byte("x"))
		} else {
			c.Write([]byte(`{"v":1,"command":"follow"}` + "\nextra"))
		}
		select {
		case cause := <-ended:
			if !errors.Is(cause, ErrBadRequest) {
				t.Errorf("late %v: ended by %v", late, cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("late %v: the stream did not end", late)
		}
		select {
		case err := <-reported:
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "data after the request") {
				t.Errorf("reported %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not reported")
		}
		c.Close()
	}
}

// fakeServer answers every connection with the given lines, as a server
// of our own uid that breaks the protocol would.
func fakeServer(t *testing.T, lines string) string {
	t.Helper()
	path := filepath.Join(socketDir(t), "fake.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(lines))
			c.Close()
		}
	})
	return path
}

func TestClientProtocolErrors(t *testing.T) {
	reply := func(m string) string {
		b, _ := json.Marshal(Message{Version: 1, Type: MsgReply, Reply: &Response{OK: true, Message: m}})
		return string(b) + "\n"
	}
	done := `{"v":1,"type":"done"}` + "\n"
	for _, tt := range []struct{ name, lines, want string }{
		{"old server", `{"ok":true,"message":"shutting down"}` + "\n", "the supervisor speaks protocol version 0, this command 1"},
		{"newer server", `{"v":2,"type":"reply","reply":{}}` + "\n", "the supervisor speaks protocol version 2, this command 1"},
		{"no end", reply("a"), "connection closed before the end of the answer"},
		{"no newline", reply("a") + `{"v":1,"type":"done"}`, "the last message has no newline"},
		{"two replies", reply("a") + reply("b") + done, "sent more than one reply to status"},
		{"no reply", done, "sent no reply to status"},
		{"garbage", "garbage\n", "invalid message"},
		{"remote error", reply("a")[:0] + `{"v":1,"type":"error","error":"no program named \"x\""}` + "\n", `no program named "x"`},
	} {
		path := fakeServer(t, tt.lines)
		_, err := Call(context.Background(), path, Request{Command: CmdStatus})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Call = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	// A message longer than the limit is refused, not buffered without end.
	path := fakeServer(t, strings.Repeat(" ", MaxMessageSize+10)+"\n")
	if _, err := Call(context.Background(), path, Request{Command: CmdStatus}); !errors.Is(err, ErrProtocol) {
		t.Errorf("huge message: %v", err)
	}
}

func TestDecodeMessage(t *testing.T) {
	for in, want := range map[string]string{
		`{"v":1,"type":"done"}`:                      "",
		`{"v":1,"type":"reply","reply":{"ok":true}}`: "",
		`{"v":1,"type":"error","error":"x"}`:         "",
		`{"v":1,"type":"reply","reply":{},"new":1}`:  "",
		`{"v":1,"type":"reply"}`:                     "protocol error: a reply message needs a reply and no error",
		`{"v":1,"type":"error"}`:                     "protocol error: an error message needs an error and no reply",
		`{"v":1,"type":"done","error":"x"}`:          "protocol error: a done message carries nothing",
		`{"v":1,"type":"frob"}`:                      `protocol error: unknown message type "frob"`,
		`{"v":1,"type":"done"} {}`:                   "protocol error: unexpected data after the message",
		`[]`:                                         "protocol error: invalid message: cannot unmarshal array into Go value of type control.Message",
	} {
		_, err := DecodeMessage([]byte(in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("DecodeMessage(%s) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDecodeMessage checks that the client's decoder never panics, that
// what it accepts follows the protocol, and that an accepted message
// survives a round trip.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"done"}`,
		`{"v":1,"type":"error","error":"bad request: x"}`,
		`{"v":1,"type":"reply","reply":{"ok":true,"programs":[{"name":"a","state":"running","pid":3,"last_exit":{"code":1,"signal":"","at":"2026-01-02T03:04:05Z"},"heartbeat":{"last_beat_at":null,"age_seconds":1.5,"metadata":{"k":[1,{}]}}}]}}`,
		`{"v":1,"type":"reply","reply":{"results":[{"name":"a","ok":false,"error":"no"}]}}`,
		`{"v":0,"ok":true}`,
		`{"v":1,"type":"reply","reply":null}`,
		`{"v":1e400}`,
		`null`,
		`"\ud800"`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if m.Version != ProtocolVersion {
			t.Fatalf("accepted version %d", m.Version)
		}
		switch m.Type {
		case MsgReply:
			if m.Reply == nil || m.Error != "" {
				t.Fatalf("accepted reply %+v", m)
			}
		case MsgDone:
			if m.Reply != nil || m.Error != "" {
				t.Fatalf("accepted done %+v", m)
			}
		case MsgError:
			if m.Reply != nil || m.Error == "" {
				t.Fatalf("accepted error %+v", m)
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", enc, err)
		}
		if again.Type != m.Type || again.Error != m.Error || (again.Reply == nil) != (m.Reply == nil) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

// A stream whose handler ends at once is closed by the server even when
// its client stays connected: the reader of the client's side must not
// lift the deadline that ends it. On one P the reader goroutine runs only
// after the handler returned, which made the connection wait for the
// client to leave.
func TestStreamEndsWhileClientStays(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	srv, _ := serveStream(t, Handlers{
		"follow": func(context.Context, Request, *Sender) error { return errors.New("nothing to follow") },
		"one":    Unary(func(context.Context, Request) Response { return Response{} }),
	})
	for i := 0; i < 20; i++ {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(`{"v":1,"command":"follow"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, "nothing to follow") {
			t.Fatalf("read %q, %v; want the handler's error", line, err)
		}
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the final message: %v, want the server to close the connection (EOF)", err)
		}
	}
}
