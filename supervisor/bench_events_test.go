package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
)

// eventsClientEnv, in the environment of this test binary, makes it an
// events client instead (see runEventsClient): the benchmark's
// subscribers are processes of their own, as `supervise events` is. Its
// value is "MODE PATH".
const eventsClientEnv = "SUPERVISE_BENCH_EVENTS_CLIENT"

func init() {
	if v := os.Getenv(eventsClientEnv); v != "" {
		mode, path, _ := strings.Cut(v, " ")
		os.Exit(runEventsClient(mode, path))
	}
}

// runEventsClient reads the events stream at path and says "subscribed"
// on stderr once it is. In mode "decode" it decodes each event and writes
// its line to stdout, as `supervise events` does; in mode "raw" it reads
// the bytes and drops them, so that only the supervisor's side of the
// stream costs anything.
func runEventsClient(mode, path string) int {
	if mode == "raw" {
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := c.Write([]byte(`{"v":1,"command":"events"}` + "\n")); err != nil {
			return 1
		}
		fmt.Fprintln(os.Stderr, "subscribed")
		io.Copy(io.Discard, c)
		return 0
	}
	out := bufio.NewWriter(os.Stdout)
	first := true
	err := control.Do(context.Background(), path, control.Request{Command: control.CmdEvents}, func(r control.Response) error {
		if first {
			first = false
			fmt.Fprintln(os.Stderr, "subscribed")
		}
		if r.Event != nil {
			out.WriteString(r.Event.Text())
			out.WriteByte('\n')
		}
		return nil
	})
	out.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startEventsClient runs an events client process reading from path,
// through the reaper, and returns once it is subscribed.
func startEventsClient(b *testing.B, mode, path string) *procs.Process {
	subscribed := make(chan struct{}, 1)
	proc, err := reaper.Spawn(procs.Spec{
		Argv:   []string{os.Args[0], "-test.run=^$"},
		Env:    append(os.Environ(), eventsClientEnv+"="+mode+" "+path),
		Stdout: procs.Output{Kind: procs.Null},
		Stderr: procs.Output{Kind: procs.Lines, OnLine: func(line []byte, _ bool) {
			if string(line) == "subscribed" {
				subscribed <- struct{}{}
			} else {
				b.Logf("events client: %s", line)
			}
		}},
	}, func(procs.Exit) {})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-subscribed:
	case <-proc.Done():
		b.Fatal("the events client ended before it subscribed")
	case <-time.After(30 * time.Second):
		b.Fatal("the events client did not subscribe")
	}
	return proc
}

// BenchmarkCrashLoopSubscribers measures the restart latency of a crash
// loop of 100 programs (from the reaper collecting a program's exit to
// its next spawn) with no events reader and with 10 reader processes:
// readers=decode decode the stream and write its lines, as `supervise
// events` does; readers=raw read its bytes and drop them, which leaves
// the supervisor's own cost of the streams. One op is one restart of one
// program; p50/p90/p99 are reported.
//
// In the saturated loop each program is /bin/false restarted at once, as
// fast as the machine can spawn: the restarts queue up behind each
// other, so the latency measures how much CPU the supervisor gets. In
// the paced one each program runs about a second before it exits (each
// a little longer than the one before, so that their exits spread out:
// about 100 restarts a second), so the latency measures how promptly the
// loop reacts.
func BenchmarkCrashLoopSubscribers(b *testing.B) {
	type run struct {
		loop, command string
		subs          int
		readers       string
	}
	var runs []run
	for _, l := range []struct{ loop, command string }{{"saturated", `["/bin/false"]`}, {"paced", `["/bin/sleep", "%s"]`}} {
		runs = append(runs, run{l.loop, l.command, 0, ""}, run{l.loop, l.command, 10, "raw"}, run{l.loop, l.command, 10, "decode"})
	}
	for _, c := range runs {
		subs := c.subs
		name := c.loop + "/subscribers=0"
		if subs > 0 {
			name = fmt.Sprintf("%s/subscribers=%d/readers=%s", c.loop, subs, c.readers)
		}
		b.Run(name, func(b *testing.B) {
			var toml strings.Builder
			fmt.Fprintf(&toml, "[supervisor]\nsocket = %q\nwatch_config = false\n", filepath.Join(b.TempDir(), "ctl.sock"))
			for i := range 100 {
				command := c.command
				if strings.Contains(command, "%s") {
					command = fmt.Sprintf(command, fmt.Sprintf("%.3f", 0.5+float64(i)*0.01))
				}
				fmt.Fprintf(&toml, `[programs.c%d]
command = %s
restart = "always"
backoff_initial = "0s"
backoff_max = "0s"
min_uptime = "0s"
stdout = "null"
stderr = "null"
[programs.c%d.breaker]
max_failures = 1000000000
`, i, command, i)
			}
			cfg, err := conf.Parse(filepath.Join(b.TempDir(), "supervise.toml"), []byte(toml.String()))
			if err != nil {
				b.Fatal(err)
			}
			sup, err := New(Options{Config: cfg, Reaper: reaper, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			lastExit := map[string]time.Time{}
			var lat []time.Duration
			done := make(chan struct{})
			target := b.N
			measuring := atomic.Bool{}
			sup.trace = func(what, name string, at time.Time) {
				mu.Lock()
				defer mu.Unlock()
				switch what {
				case "exit":
					lastExit[name] = at
				case "spawn":
					if ex, ok := lastExit[name]; ok && measuring.Load() && len(lat) < target {
						lat = append(lat, at.Sub(ex))
						if len(lat) == target {
							close(done)
						}
					}
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			ended := make(chan struct{})
			go func() { sup.Run(ctx); close(ended) }()
			<-sup.Ready()
			var clients []*procs.Process
			for range subs {
				clients = append(clients, startEventsClient(b, c.readers, sup.SocketPath()))
			}
			time.Sleep(1500 * time.Millisecond) // into the steady crash loop
			b.ResetTimer()
			measuring.Store(true)
			<-done
			b.StopTimer()
			for _, c := range clients {
				c.Signal(syscall.SIGKILL)
				<-c.Done()
			}
			cancel()
			<-ended
			reportPercentiles(b, lat)
		})
	}
}
