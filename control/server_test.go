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
	"os/exec"
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

// serve listens on a fresh socket and serves h until the test ends.
func serve(t *testing.T, h Handler) *Server {
	t.Helper()
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	startServing(t, srv, h)
	return srv
}

// startServing runs srv.Serve in a goroutine; at the end of the test it
// closes srv and checks that Serve returned nil.
func startServing(t *testing.T, srv *Server, h Handler) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), h) }()
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
// is set) and decodes the response.
func raw(t *testing.T, path string, payload []byte, closeWrite bool) Response {
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
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("reading response to %.40q: %v", payload, err)
	}
	return resp
}

func TestRoundTrip(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handle)

	resp := call(t, srv.Path(), Request{Command: CmdStatus})
	if !resp.OK || resp.Message != "did status" || len(resp.Programs) != 1 || resp.Programs[0].PID != 42 {
		t.Errorf("status response = %+v", resp)
	}
	resp = call(t, srv.Path(), Request{Command: CmdRestart, Names: []string{"web", "bad"}})
	want := []Result{{Name: "web", OK: true}, {Name: "bad", Error: "no such program"}}
	if resp.OK || len(resp.Results) != 2 || resp.Results[0] != want[0] || resp.Results[1] != want[1] {
		t.Errorf("restart response = %+v, want results %+v", resp, want)
	}
	resp = call(t, srv.Path(), Request{Command: CmdSignal, Names: []string{"web"}, Signal: "USR1"})
	if !resp.OK {
		t.Errorf("signal response = %+v", resp)
	}
	rec.mu.Lock()
	last := rec.last
	rec.mu.Unlock()
	if last.Command != CmdSignal || last.Signal != "USR1" || len(last.Names) != 1 || last.Names[0] != "web" {
		t.Errorf("handler saw %+v", last)
	}
	if n := rec.calls.Load(); n != 3 {
		t.Errorf("handler called %d times, want 3", n)
	}
}

func TestConcurrentCalls(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handle)
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
	go func() { done <- srv.Serve(context.Background(), rec.handle) }()
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
	if err := srv.Serve(context.Background(), rec.handle); !errors.Is(err, ErrServerClosed) {
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
	go func() { done <- srv.Serve(ctx, rec.handle) }()
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
	go func() { done <- srv.Serve(context.Background(), h) }()
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
	startServing(t, srv, rec.handle)
	// Binding fails while the old file exists, so an answer proves it was replaced.
	if resp := call(t, path, Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("response = %+v", resp)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	var rec recorder
	srv := serve(t, rec.handle)
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
	srv := serve(t, rec.handle)
	var reported []error
	var mu sync.Mutex
	srv.SetErrorHandler(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	})
	huge := bytes.Repeat([]byte("x"), 1<<20)
	justTooBig := append([]byte(`{"command":"status","names":["`), bytes.Repeat([]byte("a"), MaxRequestSize)...)
	tests := []struct {
		name       string
		payload    []byte
		closeWrite bool
		want       string
	}{
		{"bad JSON", []byte("hello\n"), false, "bad request: invalid JSON: invalid character 'h' looking for beginning of value"},
		{"unknown command", []byte(`{"command":"frob"}` + "\n"), false, `bad request: unknown command "frob"`},
		{"unknown field", []byte(`{"command":"status","x":1}`), true, `bad request: invalid JSON: unknown field "x"`},
		{"missing names", []byte(`{"command":"stop"}` + "\n"), false, "bad request: stop needs at least one program name"},
		{"empty line", []byte("\n"), false, "bad request: empty request"},
		{"huge body", huge, false, "bad request: request larger than 65536 bytes"},
		{"just too big", justTooBig, true, "bad request: request larger than 65536 bytes"},
		{"binary", []byte{0, 1, 2, 0xff, '\n'}, false, "bad request: invalid JSON: invalid character"},
	}
	for _, tt := range tests {
		resp := raw(t, srv.Path(), tt.payload, tt.closeWrite)
		if resp.OK || !strings.HasPrefix(resp.Error, tt.want) {
			t.Errorf("%s: response %+v, want error starting %q", tt.name, resp, tt.want)
		}
	}
	if n := rec.calls.Load(); n != 0 {
		t.Errorf("handler called %d times for garbage", n)
	}
	// The server keeps serving, and a request of exactly the limit is fine.
	if resp := call(t, srv.Path(), Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("after garbage: %+v", resp)
	}
	atLimit := []byte(`{"command":"status"}`)
	atLimit = append(atLimit, bytes.Repeat([]byte(" "), MaxRequestSize-len(atLimit))...)
	if resp := raw(t, srv.Path(), append(atLimit, '\n'), false); !resp.OK {
		t.Errorf("request of exactly %d bytes: %+v", MaxRequestSize, resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != len(tests) {
		t.Errorf("error handler got %d errors, want %d: %v", len(reported), len(tests), reported)
	}
	for _, err := range reported {
		if peer := fmt.Sprintf("control: peer pid %d uid %d: bad request: ", os.Getpid(), os.Getuid()); !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), peer) {
			t.Errorf("reported error %q lacks ErrBadRequest or the peer", err)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	var rec recorder
	srv, err := Listen(filepath.Join(socketDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv.timeout = 100 * time.Millisecond
	startServing(t, srv, rec.handle)
	// Half a request and silence: the server gives up and says why.
	resp := raw(t, srv.Path(), []byte(`{"command":`), false)
	if want := "bad request: no complete request within 100ms"; resp.OK || resp.Error != want {
		t.Errorf("response %+v, want error %q", resp, want)
	}
	if n := rec.calls.Load(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
}

func TestHandlerPanic(t *testing.T) {
	srv := serve(t, func(ctx context.Context, req Request) Response {
		if req.Command == CmdReload {
			panic("boom")
		}
		return Response{OK: true}
	})
	resp := call(t, srv.Path(), Request{Command: CmdReload})
	if want := `internal error handling "reload": boom`; resp.OK || resp.Error != want {
		t.Errorf("response %+v, want error %q", resp, want)
	}
	if resp := call(t, srv.Path(), Request{Command: CmdStatus}); !resp.OK {
		t.Errorf("after panic: %+v", resp)
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
	srv := serve(t, func(ctx context.Context, req Request) Response {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Response{OK: true}
	})
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
	// The test binary usually lives in a 0700 build directory: copy it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	copyFile(t, exe, bin, 0o755)

	runClient := func(t *testing.T, path string) callOutcome {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envCallPath+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client: %v\n%s", err, stderr.Bytes())
		}
		var o callOutcome
		if err := json.Unmarshal(out, &o); err != nil {
			t.Fatalf("client output %q: %v", out, err)
		}
		if o.UID != 65534 {
			t.Fatalf("client ran as uid %d", o.UID)
		}
		return o
	}

	t.Run("other uid refused", func(t *testing.T) {
		var rec recorder
		srv, err := Listen(filepath.Join(dir, "refuse.sock"))
		if err != nil {
			t.Fatal(err)
		}
		var reported atomic.Value
		srv.SetErrorHandler(func(err error) { reported.Store(err) })
		startServing(t, srv, rec.handle)
		if err := os.Chmod(srv.Path(), 0o666); err != nil {
			t.Fatal(err)
		}
		o := runClient(t, srv.Path())
		if o.Err != "" {
			t.Fatalf("client error: %s", o.Err)
		}
		want := Response{OK: false, Error: "permission denied: uid 65534"}
		if o.Response.OK || o.Response.Error != want.Error || o.Response.Message != "" || o.Response.Programs != nil {
			t.Errorf("response %+v, want %+v", o.Response, want)
		}
		if n := rec.calls.Load(); n != 0 {
			t.Errorf("handler called %d times for a refused peer", n)
		}
		if err, _ := reported.Load().(error); err == nil || !strings.Contains(err.Error(), "uid 65534: permission denied: uid 65534") {
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
		startServing(t, srv, rec.handle)
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
		startServing(t, srv, rec.handle)
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
