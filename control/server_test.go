package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// socketDir returns a fresh directory with a short path (socket paths are
// limited to 107 bytes), removed when the test ends.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// recorder is a fake handler that counts its calls and remembers the last
// request.
type recorder struct {
	calls atomic.Int64
	mu    sync.Mutex
	last  Request
}

func (r *recorder) handle(_ context.Context, req Request) Response {
	r.calls.Add(1)
	r.mu.Lock()
	r.last = req
	r.mu.Unlock()
	resp := Response{OK: true, Message: "did " + req.Command}
	for _, n := range req.Names {
		resp.Results = append(resp.Results, Result{Name: n, OK: n != "bad", Error: map[bool]string{true: "no such program"}[n == "bad"]})
		if n == "bad" {
			resp.OK = false
		}
	}
	if req.Command == CmdStatus {
		resp.Programs = []ProgramStatus{{Name: "db", State: "running", PID: 42}}
	}
	return resp
}

// handlers serves every remote command with r.handle.
func (r *recorder) handlers() Handlers { return unaryAll(r.handle) }

// unaryAll serves every remote command of Commands with f.
func unaryAll(f func(context.Context, Request) Response) Handlers {
	hs := Handlers{}
	for _, name := range Commands.Names(true) {
		hs[name] = Unary(f)
	}
	return hs
}

// serve listens on a fresh socket and serves hs until the test ends.
func serve(t *testing.T, hs Handlers) *Server {
	t.Helper()
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	startServing(t, srv, hs)
	return srv
}

// startServing runs srv.Serve in a goroutine; at the end of the test it
// closes srv and checks that Serve returned nil.
func startServing(t *testing.T, srv *Server, hs Handlers) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), hs) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func call(t *testing.T, path string, req Request) Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := Call(ctx, path, req)
	if err != nil {
		t.Fatalf("Call(%+v): %v", req, err)
	}
	return resp
}

// raw sends payload on a new connection (half-closing it when closeWrite
// is set) and decodes the first message of the answer.
func raw(t *testing.T, path string, payload []byte, closeWrite bool) Message {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	written := make(chan struct{})
	go func() {
		defer close(written)
		// A huge payload is cut short by the server: ignore EPIPE.
		c.Write(payload)
		if closeWrite {
			c.(*net.UnixConn).CloseWrite()
		}
	}()
	defer func() { <-written }()
	var m Message
	if err := json.NewDecoder(c).Decode(&m); err != nil {
		t.Fatalf("reading response to %.40q: %v", payload, err)
	}
	if m.Version != ProtocolVersion {
		t.Errorf("message %+v lacks the protocol version", m)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handlers())

	resp := call(t, srv.Path(), Request{Command: CmdStatus})
	if !resp.OK || resp.Message != "did status" || len(resp.Programs) != 1 || resp.Programs[0].PID != 42 {
		t.Errorf("status response = %+v", resp)
	}
	resp = call(t, srv.Path(), Request{Command: CmdRestart, Names: []string{"web", "bad"}})
	want := []Result{{Name: "web", OK: true}, {Name: "bad", Error: "no such program"}}
	if resp.OK || len(resp.Results) != 2 || resp.Results[0] != want[0] || resp.Results[1] != want[1] {
		t.Errorf("restart response = %+v, want results %+v", resp, want)
	}
	resp = call(t, srv.Path(), Request{Command: CmdSignal, Names: []string{"web"}, Params: map[string]string{ParamSignal: "USR1"}})
	if !resp.OK {
		t.Errorf("signal response = %+v", resp)
	}
	rec.mu.Lock()
	last := rec.last
	rec.mu.Unlock()
	if last.Command != CmdSignal || last.Param(ParamSignal) != "USR1" || last.Version != ProtocolVersion || len(last.Names) != 1 || last.Names[0] != "web" {
		t.Errorf("handler saw %+v", last)
	}
	if n := rec.calls.Load(); n != 3 {
		t.Errorf("handler called %d times, want 3", n)
	}
}

func TestConcurrentCalls(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handlers())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := Call(ctx, srv.Path(), Request{Command: CmdStatus})
			if err != nil || !resp.OK {
				t.Errorf("Call: %+v, %v", resp, err)
			}
		})
	}
	wg.Wait()
	if n := rec.calls.Load(); n != 20 {
		t.Errorf("handler called %d times, want 20", n)
	}
}

func TestSocketMode(t *testing.T) {
	for _, umask := range []int{0, 0o022, 0o277} {
		path := filepath.Join(socketDir(t), "sub", "dir", "s.sock")
		old := syscall.Umask(umask)
		srv, err := Listen(path)
		syscall.Umask(old)
		if err != nil {
			t.Fatalf("umask %03o: %v", umask, err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("umask %03o: socket mode %v, want socket 0600", umask, fi.Mode())
		}
		for _, d := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
			di, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if !di.IsDir() || di.Mode().Perm() != 0o755 {
				t.Errorf("umask %03o: created directory %s has mode %v, want 0755", umask, d, di.Mode())
			}
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCloseRemovesSocket(t *testing.T) {
	var rec recorder
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), rec.handlers()) }()
	call(t, srv.Path(), Request{Command: CmdStatus})
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := srv.Serve(context.Background(), rec.handlers()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

func TestCloseWithoutServe(t *testing.T) {
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
}

func TestCloseKeepsForeignFile(t *testing.T) {
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaced the socket file: Close must not remove theirs.
	if err := os.Remove(srv.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.Path(), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(srv.Path()); err != nil {
		t.Errorf("Close removed a file it did not create: %v", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	var rec recorder
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, rec.handlers()) }()
	call(t, srv.Path(), Request{Command: CmdStatus})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after cancel: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
}

func TestCloseWaitsForHandlers(t *testing.T) {
	entered := make(chan struct{})
	var returned atomic.Bool
	h := func(ctx context.Context, req Request) Response {
		close(entered)
		<-ctx.Done() // Close ends the handler's context
		returned.Store(true)
		return Response{OK: true, Message: "late"}
	}
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), unaryAll(h)) }()
	type outcome struct {
		resp Response
		err  error
	}
	got := make(chan outcome, 1)
	go func() {
		resp, err := Call(context.Background(), srv.Path(), Request{Command: CmdStatus})
		got <- outcome{resp, err}
	}()
	<-entered
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Error("Close returned while a handler was running")
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	o := <-got
	if o.err != nil || o.resp.Message != "late" {
		t.Errorf("in-flight call got %+v, %v; want its response", o.resp, o.err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(socketDir(t), "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // leaves a socket file nobody listens on
	srv, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	var rec recorder
	startServing(t, srv, rec.handlers())
	// Binding fails while the old file exists, so an answer proves it was replaced.
	if resp := call(t, path, Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("response = %+v", resp)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handlers())
	_, err := Listen(srv.Path())
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen = %v, want ErrInUse", err)
	}
	if want := "another supervisor is listening on " + srv.Path(); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The first server is untouched, and the probe did not reach its handler.
	if resp := call(t, srv.Path(), Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("first server answered %+v", resp)
	}
	if n := rec.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "s.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(path)
	if !errors.Is(err, ErrNotSocket) {
		t.Fatalf("Listen over a regular file = %v, want ErrNotSocket", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("regular file was touched: %q, %v", b, err)
	}
}

func TestListenPathTooLong(t *testing.T) {
	path := "/tmp/" + strings.Repeat("x", 120) + ".sock"
	if _, err := Listen(path); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("Listen(long path) = %v, want ErrPathTooLong", err)
	}
	if _, err := Listen(""); err == nil {
		t.Fatal("Listen(\"\") succeeded")
	}
}

func TestGarbageRequests(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handlers())
	var reported []error
	var mu sync.Mutex
	srv.SetErrorHandler(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	})
	huge := bytes.Repeat([]byte("x"), 1<<20)
	justTooBig := append([]byte(`{"v":1,"command":"status","names":["`), bytes.Repeat([]byte("a"), MaxRequestSize)...)
	tests := []struct {
		name       string
		payload    []byte
		closeWrite bool
		want       string
	}{
		{"bad JSON", []byte("hello\n"), false, "bad request: invalid JSON: invalid character 'h' looking for beginning of value"},
		{"no version", []byte(`{"command":"status"}` + "\n"), false, "bad request: protocol version 0, this supervisor speaks 1"},
		{"unknown command", []byte(`{"v":1,"command":"frob"}` + "\n"), false, `bad request: unknown command "frob"`},
		{"local command", []byte(`{"v":1,"command":"validate"}` + "\n"), false, `bad request: validate is a command of the command line`},
		{"unknown field", []byte(`{"v":1,"command":"status","x":1}`), true, `bad request: invalid JSON: unknown field "x"`},
		{"missing names", []byte(`{"v":1,"command":"stop"}` + "\n"), false, "bad request: stop needs at least one program name"},
		{"empty line", []byte("\n"), false, "bad request: empty request"},
		{"huge body", huge, false, "bad request: request larger than 65536 bytes"},
		{"just too big", justTooBig, true, "bad request: request larger than 65536 bytes"},
		{"binary", []byte{0, 1, 2, 0xff, '\n'}, false, "bad request: invalid JSON: invalid character"},
	}
	for _, tt := range tests {
		m := raw(t, srv.Path(), tt.payload, tt.closeWrite)
		if m.Type != MsgError || m.Reply != nil || !strings.HasPrefix(m.Error, tt.want) {
			t.Errorf("%s: message %+v, want an error starting %q", tt.name, m, tt.want)
		}
	}
	if n := rec.calls.Load(); n != 0 {
		t.Errorf("handler called %d times for garbage", n)
	}
	// The server keeps serving, and a request of exactly the limit is fine.
	if resp := call(t, srv.Path(), Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("after garbage: %+v", resp)
	}
	atLimit := []byte(`{"v":1,"command":"status"}`)
	atLimit = append(atLimit, bytes.Repeat([]byte(" "), MaxRequestSize-len(atLimit))...)
	if m := raw(t, srv.Path(), append(atLimit, '\n'), false); m.Type != MsgReply || !m.Reply.OK {
		t.Errorf("request of exactly %d bytes: %+v", MaxRequestSize, m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != len(tests) {
		t.Errorf("error handler got %d errors, want %d: %v", len(reported), len(tests), reported)
	}
	for _, err := range reported {
		var pe *PeerError
		if peer := fmt.Sprintf("control: peer pid %d uid %d: bad request: ", os.Getpid(), os.Getuid()); !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), peer) ||
			!errors.As(err, &pe) || pe.PID != os.Getpid() || pe.UID != os.Getuid() {
			t.Errorf("reported error %q lacks ErrBadRequest or the peer", err)
		}
	}
}

// A connection that sends nothing is reported too, naming the peer.
func TestEmptyConnectionReported(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handlers())
	reported := make(chan error, 1)
	srv.SetErrorHandler(func(err error) { reported <- err })
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case err := <-reported:
		var pe *PeerError
		if !errors.Is(err, ErrEmptyRequest) || !errors.As(err, &pe) || pe.PID != os.Getpid() {
			t.Errorf("reported %v, want ErrEmptyRequest naming pid %d", err, os.Getpid())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an empty connection was not reported")
	}
}

func TestRequestTimeout(t *testing.T) {
	var rec recorder
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv.timeout = 100 * time.Millisecond
	reported := make(chan error, 1)
	srv.SetErrorHandler(func(err error) { reported <- err })
	startServing(t, srv, rec.handlers())
	// Half a request and silence: the server gives up and says why.
	m := raw(t, srv.Path(), []byte(`{"v":1,"command":`), false)
	if want := "bad request: no complete request within 100ms"; m.Type != MsgError || m.Error != want {
		t.Errorf("message %+v, want error %q", m, want)
	}
	if n := rec.calls.Load(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	if err := <-reported; !strings.Contains(err.Error(), fmt.Sprintf("peer pid %d", os.Getpid())) || !errors.Is(err, ErrBadRequest) {
		t.Errorf("reported %v", err)
	}
}

func TestHandlerPanic(t *testing.T) {
	hs := unaryAll(func(ctx context.Context, req Request) Response {
		if req.Command == CmdReload {
			panic("boom")
		}
		return Response{OK: true}
	})
	srv := serve(t, hs)
	reported := make(chan error, 1)
	srv.SetErrorHandler(func(err error) { reported <- err })
	_, err := Call(context.Background(), srv.Path(), Request{Command: CmdReload})
	if err := <-reported; !strings.Contains(err.Error(), fmt.Sprintf("peer pid %d uid %d: internal error handling \"reload\": boom", os.Getpid(), os.Getuid())) {
		t.Errorf("reported %v", err)
	}
	var re *RemoteError
	if want := `internal error handling "reload": boom`; !errors.As(err, &re) || re.Msg != want {
		t.Errorf("Call = %v, want the remote error %q", err, want)
	}
	if resp := call(t, srv.Path(), Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("after panic: %+v", resp)
	}
}

// A Response with Error set is, through Unary, the answer's error
// message; a handler's error is too.
func TestRefusals(t *testing.T) {
	hs := unaryAll(func(ctx context.Context, req Request) Response {
		return Response{Error: "no program named \"x\""}
	})
	hs[CmdReload] = func(context.Context, Request, *Sender) error { return errors.New("configuration unchanged: bad") }
	srv := serve(t, hs)
	for cmd, want := range map[string]string{CmdStatus: `no program named "x"`, CmdReload: "configuration unchanged: bad"} {
		_, err := Call(context.Background(), srv.Path(), Request{Command: cmd})
		var re *RemoteError
		if !errors.As(err, &re) || re.Msg != want {
			t.Errorf("%s: %v, want the remote error %q", cmd, err, want)
		}
	}
	m := raw(t, srv.Path(), []byte(`{"v":1,"command":"reload"}`+"\n"), false)
	if m.Type != MsgError || m.Error != "configuration unchanged: bad" {
		t.Errorf("reload: %+v", m)
	}
}

func TestServeChecksHandlers(t *testing.T) {
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := unaryAll(func(context.Context, Request) Response { return Response{} })
	delete(hs, CmdReset)
	hs["frob"] = hs[CmdStatus]
	hs["run"] = hs[CmdStatus]
	err = srv.Serve(context.Background(), hs)
	if want := "control: no handler for reset\nhandlers for commands that are not remote commands of the registry: frob, run"; err == nil || err.Error() != want {
		t.Errorf("Serve = %v, want %q", err, want)
	}
}

func TestCallNoSupervisor(t *testing.T) {
	path := filepath.Join(socketDir(t), "s.sock")
	_, err := Call(context.Background(), path, Request{Command: CmdStatus})
	want := "cannot reach the supervisor at " + path + ": is it running? (connect: no such file or directory)"
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, syscall.ENOENT) || err == nil || err.Error() != want {
		t.Errorf("Call = %v, want %q wrapping ErrUnreachable and ENOENT", err, want)
	}

	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	_, err = Call(context.Background(), path, Request{Command: CmdStatus})
	want = "cannot reach the supervisor at " + path + ": is it running? (connect: connection refused)"
	if !errors.Is(err, ErrUnreachable) || err.Error() != want {
		t.Errorf("Call to a stale socket = %v, want %q", err, want)
	}
}

func TestCallContext(t *testing.T) {
	release := make(chan struct{})
	srv := serve(t, unaryAll(func(ctx context.Context, req Request) Response {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Response{OK: true}
	}))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Call(ctx, srv.Path(), Request{Command: CmdStatus})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call past its deadline = %v, want DeadlineExceeded", err)
	}
}

func TestPermitted(t *testing.T) {
	s := &Server{uid: 1000}
	for uid, want := range map[uint32]bool{0: true, 1000: true, 1001: false, 65534: false} {
		if got := s.permitted(uid); got != want {
			t.Errorf("permitted(%d) with server uid 1000 = %v, want %v", uid, got, want)
		}
	}
}

// TestPeerCredentials runs this test binary as uid 65534 (nobody) as a
// client of a server run by root. The socket is made reachable to that
// user for this test only.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client under another uid")
	}
	dir := socketDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyTestBinary(t)
	runClient := func(t *testing.T, path string) outcome {
		t.Helper()
		return runAsNobody(t, bin, map[string]string{envCallPath: path})
	}

	t.Run("other uid refused", func(t *testing.T) {
		var rec recorder
		srv, err := Listen(filepath.Join(dir, "refuse.sock"))
		if err != nil {
			t.Fatal(err)
		}
		var reported atomic.Value
		srv.SetErrorHandler(func(err error) { reported.Store(err) })
		startServing(t, srv, rec.handlers())
		if err := os.Chmod(srv.Path(), 0o666); err != nil {
			t.Fatal(err)
		}
		o := runClient(t, srv.Path())
		if want := "permission denied: uid 65534"; o.Err != want || o.Response.OK || o.Response.Programs != nil {
			t.Errorf("outcome %+v, want the error %q", o, want)
		}
		if n := rec.calls.Load(); n != 0 {
			t.Errorf("handler called %d times for a refused peer", n)
		}
		err, _ = reported.Load().(error)
		var pe *PeerError
		if err == nil || !strings.Contains(err.Error(), "uid 65534: permission denied: uid 65534") ||
			!errors.Is(err, ErrPermission) || !errors.As(err, &pe) || pe.UID != 65534 || pe.PID <= 0 {
			t.Errorf("reported %v", err)
		}
	})

	t.Run("own uid allowed", func(t *testing.T) {
		var rec recorder
		srv, err := Listen(filepath.Join(dir, "own.sock"))
		if err != nil {
			t.Fatal(err)
		}
		srv.uid = 65534 // as if the supervisor ran as nobody
		startServing(t, srv, rec.handlers())
		if err := os.Chmod(srv.Path(), 0o666); err != nil {
			t.Fatal(err)
		}
		o := runClient(t, srv.Path())
		if o.Err != "" || !o.Response.OK || o.Response.Message != "did status" {
			t.Errorf("outcome %+v", o)
		}
		if n := rec.calls.Load(); n != 1 {
			t.Errorf("handler called %d times, want 1", n)
		}
	})

	t.Run("mode 0600 keeps others out", func(t *testing.T) {
		var rec recorder
		srv, err := Listen(filepath.Join(dir, "closed.sock"))
		if err != nil {
			t.Fatal(err)
		}
		startServing(t, srv, rec.handlers())
		o := runClient(t, srv.Path())
		want := "cannot reach the supervisor at " + srv.Path() + ": connect: permission denied"
		if o.Err != want {
			t.Errorf("client error %q, want %q", o.Err, want)
		}
		if n := rec.calls.Load(); n != 0 {
			t.Errorf("handler called %d times", n)
		}
	})
}

// The client refuses a socket served by a process that is neither root
// nor its own user, before it sends anything (SPEC section 9): here a
// plain listener run as uid 65534 squats the path.
func TestClientRefusesForeignServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a listener under another uid")
	}
	dir := socketDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := copyTestBinary(t)
	path := filepath.Join(dir, "squat.sock")
	wait := squatter(t, bin, path)
	for _, cmd := range []string{CmdStatus, CmdShutdown} {
		_, err := Call(context.Background(), path, Request{Command: cmd})
		want := fmt.Sprintf("refusing to talk to the socket at %s: it is served by uid 65534 (pid ", path)
		if !errors.Is(err, ErrUntrustedServer) || !strings.HasPrefix(err.Error(), want) ||
			!strings.HasSuffix(err.Error(), "), neither root nor this user (uid 0)") {
			t.Errorf("%s: %v, want ErrUntrustedServer: %q...", cmd, err, want)
		}
	}
	if o := wait(); o.Err != "" || len(o.Received) != 2 || o.Received[0] != 0 || o.Received[1] != 0 {
		t.Errorf("the squatter saw %+v, want two connections that sent nothing", o)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
