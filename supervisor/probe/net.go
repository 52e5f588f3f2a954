package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// BodyLimit is how much of an HTTP probe's response body is read: enough
// for the error of a failed attempt, little enough that an endpoint that
// streams cannot hold the attempt.
const BodyLimit = 4 << 10

// userAgent is sent with every HTTP probe.
const userAgent = "supervise-probe/1"

// dialer opens probe connections. Linger 0 closes them with a reset, so a
// probe made every second leaves no TIME_WAIT socket behind on either side
// (which, at a thousand probes a second, would use up the ephemeral ports).
var dialer = &net.Dialer{
	KeepAlive: -1, // a probe connection lives for one attempt
}

func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c, nil
}

// HTTP is the http probe: a GET of a URL; a 2xx or 3xx status passes and
// redirects are not followed. Every attempt opens its own connection
// (HTTP/1.1 with "Connection: close", no proxy) and closes it once the
// status is read; a failing response's body is read up to BodyLimit for
// the error. An https URL's certificate is checked only with verifyTLS.
//
// It writes the request and reads the response with net/http's own
// ReadResponse on a connection of its own, rather than through an
// http.Transport, whose connection pool and per-connection goroutines
// cost several times the CPU of the exchange itself at one attempt per
// connection.
type HTTP struct {
	addr    string // host:port to dial
	request []byte // the whole request, written at once
	tls     *tls.Config
}

// maxHeaderBytes bounds what a response's status line and headers may take.
const maxHeaderBytes = 16 << 10

// NewHTTP returns the probe of rawURL, which must be an absolute http or
// https URL.
func NewHTTP(rawURL string, verifyTLS bool) (*HTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("probe: %q is not an http or https URL with a host", rawURL)
	}
	h := &HTTP{addr: u.Host}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		h.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		h.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: !verifyTLS}
	}
	h.request = []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: " + userAgent + "\r\nAccept: */*\r\nConnection: close\r\n\r\n")
	return h, nil
}

// Check makes one GET.
func (h *HTTP) Check(ctx context.Context) error {
	conn, err := dial(ctx, "tcp", h.addr)
	if err != nil {
		return netError(ctx, err)
	}
	defer conn.Close()
	// The attempt's end interrupts whatever the connection is doing.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if h.tls != nil {
		tc := tls.Client(conn, h.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return netError(ctx, err)
		}
		conn = tc
	}
	if _, err := conn.Write(h.request); err != nil {
		return netError(ctx, err)
	}
	r := &io.LimitedReader{R: conn, N: maxHeaderBytes}
	resp, err := http.ReadResponse(bufio.NewReaderSize(r, 2048), nil)
	if err != nil {
		return netError(ctx, fmt.Errorf("reading the response: %w", err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	r.N += BodyLimit
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, BodyLimit))
	msg := "HTTP " + resp.Status
	if text := cleanBody(body); text != "" {
		msg += ": " + text
	} else if rerr != nil {
		msg += ": " + netError(ctx, rerr).Error()
	}
	return errors.New(msg)
}

// TCP is the tcp probe: a connection to Addr opens (and is closed at once).
type TCP struct {
	Addr string
}

// Check opens and closes one connection.
func (t *TCP) Check(ctx context.Context) error {
	c, err := dial(ctx, "tcp", t.Addr)
	if err != nil {
		return netError(ctx, err)
	}
	return c.Close()
}

// netError turns an error of the network or HTTP client into the cause a
// status shows: the timeout when the attempt's context ended, else the
// innermost operation ("dial tcp 127.0.0.1:80: connect: connection
// refused") without the URL the status already names.
func netError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// cleanBody makes the start of a response body fit for one line of status.
func cleanBody(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	const max = 200
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return s
}
