package probe

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// server answers the probes of a test: each path is one behaviour, and it
// counts the connections it accepted.
func server(t *testing.T, tls bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != userAgent {
			w.WriteHeader(400)
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/down", http.StatusFound) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("  database\n   unreachable \n"))
	})
	mux.HandleFunc("/flood", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("x", 1024))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes that verification aborts
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newHTTP(t *testing.T, url string, verify bool) *HTTP {
	t.Helper()
	h, err := NewHTTP(url, verify)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTP(t *testing.T) {
	srv, conns := server(t, false)
	for i := 0; i < 3; i++ {
		if err := check(t, newHTTP(t, srv.URL+"/ok", false), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	h := newHTTP(t, srv.URL+"/ok", false)
	for i := 0; i < 3; i++ {
		if err := check(t, h, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 6 {
		t.Fatalf("%d connections for 6 attempts: a connection was reused", n)
	}
	// A redirect passes as it is: its target (a 503) is not fetched.
	if err := check(t, newHTTP(t, srv.URL+"/moved", false), 10*time.Second); err != nil {
		t.Fatalf("302: %v", err)
	}
	err := check(t, newHTTP(t, srv.URL+"/down", false), 10*time.Second)
	if err == nil || err.Error() != "HTTP 503 Service Unavailable: database unreachable" {
		t.Fatalf("503: %v", err)
	}
}

// An endpoint that streams without end is read up to BodyLimit only.
func TestHTTPBodyLimit(t *testing.T) {
	srv, _ := server(t, false)
	start := time.Now()
	err := check(t, newHTTP(t, srv.URL+"/flood", false), 20*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "HTTP 500 Internal Server Error: xxx") || !strings.HasSuffix(err.Error(), "…") {
		t.Fatalf("error %.80v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the attempt read for %v", time.Since(start))
	}
}

func TestHTTPTimeout(t *testing.T) {
	srv, _ := server(t, false)
	err := check(t, newHTTP(t, srv.URL+"/slow", false), 300*time.Millisecond)
	var te *TimeoutError
	if !errors.As(err, &te) || err.Error() != "timed out after 300ms" {
		t.Fatalf("error %v (%T)", err, err)
	}
}

func TestHTTPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = check(t, newHTTP(t, "http://"+addr+"/", false), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "Get ") {
		t.Fatalf("error %v", err)
	}
}

func TestHTTPS(t *testing.T) {
	srv, _ := server(t, true)
	if err := check(t, newHTTP(t, srv.URL+"/ok", false), 10*time.Second); err != nil {
		t.Fatalf("self-signed certificate, not verified: %v", err)
	}
	err := check(t, newHTTP(t, srv.URL+"/ok", true), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed certificate, verified: %v", err)
	}
}

func TestNewHTTPRefusesOtherURLs(t *testing.T) {
	for _, u := range []string{"ftp://x/", "/healthz", "http://", "::"} {
		if _, err := NewHTTP(u, false); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	addr := ln.Addr().String()
	if err := check(t, &TCP{Addr: addr}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener saw no connection")
	}
	ln.Close()
	err = check(t, &TCP{Addr: addr}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed port: %v", err)
	}
}

// fullListener is a TCP port that accepts no more connections: its
// accept queue is full and never drained, so a new connect hangs (the
// kernel drops the SYNs).
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill the accept queue of a listener")
	return ""
}

func TestTCPTimeout(t *testing.T) {
	addr := fullListener(t)
	err := check(t, &TCP{Addr: addr}, 300*time.Millisecond)
	var te *TimeoutError
	if !errors.As(err, &te) || err.Error() != "timed out after 300ms" {
		t.Fatalf("error %v", err)
	}
}
