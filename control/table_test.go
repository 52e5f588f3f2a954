package control

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{time.Second, "1s"},
		{45*time.Second + 900*time.Millisecond, "45s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m00s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{time.Hour, "1h00m"},
		{2*time.Hour + 3*time.Minute + 59*time.Second, "2h03m"},
		{23*time.Hour + 59*time.Minute, "23h59m"},
		{24 * time.Hour, "1d00h"},
		{3*24*time.Hour + 4*time.Hour + 30*time.Minute, "3d04h"},
		{400 * 24 * time.Hour, "400d00h"},
		{math.MaxInt64, "106751d23h"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestWriteTableGolden(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ps := []ProgramStatus{
		{Name: "db", State: "running", PID: 4123, UptimeSeconds: 2*3600 + 3*60 + 40.5, Restarts: 0,
			Breaker:   BreakerStatus{State: "closed", MaxFailures: 5},
			Heartbeat: HeartbeatStatus{LastBeatAt: &at, AgeSeconds: ptr(2.4)}},
		{Name: "worker", State: "backoff", Restarts: 3,
			Breaker:  BreakerStatus{State: "closed", Failures: 3, MaxFailures: 5},
			LastExit: &ExitStatus{Code: 1, At: at}},
		{Name: "flappy", State: "open", Restarts: 5,
			Breaker:  BreakerStatus{State: "open", Failures: 5, MaxFailures: 5, RemainingSeconds: 41.2},
			LastExit: &ExitStatus{Code: 1, At: at}},
		{Name: "killed-long-name.1", State: "starting", PID: 77, UptimeSeconds: 0.3, Restarts: 12,
			Breaker:   BreakerStatus{State: "half_open", Failures: 5, MaxFailures: 5},
			Heartbeat: HeartbeatStatus{AgeSeconds: ptr(3*24*3600 + 4*3600.0)},
			LastExit:  &ExitStatus{Code: -1, Signal: "SIGKILL", At: at}},
		{Name: "broken", State: "backoff", Restarts: 1,
			Breaker:  BreakerStatus{State: "closed", Failures: 1, MaxFailures: 5},
			LastExit: &ExitStatus{Code: -1, Error: "exec /usr/bin/wbe: no such file or directory", At: at}},
		{Name: "manual", State: "stopped", Breaker: BreakerStatus{State: "closed"}},
		{Name: "odd", State: "", UptimeSeconds: math.NaN(),
			Breaker:   BreakerStatus{State: "open", RemainingSeconds: 90},
			Heartbeat: HeartbeatStatus{AgeSeconds: ptr(-1.0)}},
		{Name: "fresh", State: "open", Breaker: BreakerStatus{State: "open", RemainingSeconds: 0.01}},
		// Instances group under their program where the first appears,
		// whatever the order of the rows.
		{Name: "web:0", Program: "web", State: "running", PID: 501, UptimeSeconds: 62, Breaker: BreakerStatus{State: "closed"}},
		{Name: "plain", Program: "plain", State: "running", PID: 9, Breaker: BreakerStatus{State: "closed"}},
		{Name: "web:1", Program: "web", Replica: 1, State: "backoff", Restarts: 1,
			Breaker: BreakerStatus{State: "closed", Failures: 1, MaxFailures: 5}, LastExit: &ExitStatus{Code: 2, At: at}},
		{Name: "web:2", Program: "web", Replica: 2, State: "running", PID: 503, UptimeSeconds: 61, Breaker: BreakerStatus{State: "closed"}},
		{Name: "a-very-long-program-name-for-the-column:10", Program: "a-very-long-program-name-for-the-column", Replica: 10,
			State: "weird", Breaker: BreakerStatus{State: "closed"}},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, ps); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteTable output differs from %s:\n got:\n%s\nwant:\n%s", golden, buf.Bytes(), want)
	}
}

func TestWriteTableEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if want := "NAME   STATE   PID   UPTIME   RESTARTS   BREAKER   HEARTBEAT   LAST EXIT\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteTableError(t *testing.T) {
	if err := WriteTable(failWriter{}, []ProgramStatus{{Name: "a"}}); err == nil {
		t.Error("WriteTable to a failing writer returned nil")
	}
}
