package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/watch/heartbeat"
)

func ExampleWrite() {
	dir, _ := os.MkdirTemp("", "hb")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "heartbeat.json")

	at := time.Date(2024, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	err := heartbeat.Write(path, heartbeat.State{Timestamp: at, PID: 4123, Hostname: "web-1",
		Metadata: map[string]any{"version": "1.2.3"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := os.ReadFile(path)
	fmt.Print(string(data))
	st, _ := heartbeat.Read(path)
	fmt.Println(st.PID, st.Hostname, st.Metadata["version"], st.Timestamp.Format(time.RFC3339Nano))
	// Output:
	// {"timestamp":"2024-05-01T12:00:00.500000000Z","pid":4123,"hostname":"web-1","metadata":{"version":"1.2.3"}}
	// 4123 web-1 1.2.3 2024-05-01T12:00:00.5Z
}

func ExampleIsAlive() {
	dir, _ := os.MkdirTemp("", "hb")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "heartbeat.json")
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	heartbeat.Write(path, heartbeat.State{Timestamp: at, PID: 1})

	alive, _, err := heartbeat.IsAlive(path, 30*time.Second, at.Add(10*time.Second))
	fmt.Println(alive, err)
	alive, _, err = heartbeat.IsAlive(path, 30*time.Second, at.Add(45*time.Second))
	fmt.Println(alive, errors.Is(err, heartbeat.ErrStale))
	// Output:
	// true <nil>
	// false true
}

func ExampleWriter_Run() {
	dir, _ := os.MkdirTemp("", "hb")
	defer os.RemoveAll(dir)
	clk := clock.NewFake(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	beats := make(chan heartbeat.State, 1)
	w := heartbeat.NewWriter(filepath.Join(dir, "heartbeat.json"), 10*time.Second,
		heartbeat.WithClock(clk),
		heartbeat.WithHostname("web-1"),
		heartbeat.WithMetadata(func() map[string]any { return map[string]any{"running": 3} }),
		heartbeat.WithAfterBeat(func(s heartbeat.State) { beats <- s }))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for i := 0; i < 3; i++ {
		s := <-beats
		fmt.Println(s.Timestamp.Format(time.TimeOnly), s.Hostname, s.Metadata["running"])
		clk.Advance(10 * time.Second)
	}
	<-beats
	cancel()
	fmt.Println(<-done)
	// Output:
	// 12:00:00 web-1 3
	// 12:00:10 web-1 3
	// 12:00:20 web-1 3
	// context canceled
}
