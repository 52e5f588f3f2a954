package watchdog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/supervise/supervise/clock"
	"github.com/supervise/supervise/watch/watchdog"
)

func ExampleWatchdog() {
	clk := clock.NewFake(time.Time{})
	start := clk.Now()
	w := watchdog.New(10*time.Second, func() {
		fmt.Println("no ping for 10s; fired at", clk.Since(start))
	}, watchdog.WithClock(clk), watchdog.WithStartGrace(30*time.Second))

	w.Start()
	clk.Advance(20 * time.Second) // within the start grace
	w.Ping()
	clk.Advance(8 * time.Second)
	w.Ping()
	clk.Advance(9 * time.Second)
	fmt.Println("still quiet; pings so far:", w.Stats().Pings)
	clk.Advance(time.Second)
	fmt.Println("running after the timeout:", w.Stats().Timeouts, w.SinceLastPing())
	// Output:
	// still quiet; pings so far: 2
	// no ping for 10s; fired at 38s
	// running after the timeout: 1 10s
}

// The owner of the hook decides whether to watch another period: here it
// re-arms twice, then lets the watchdog expire.
func ExampleWatchdog_Reset() {
	clk := clock.NewFake(time.Time{})
	start := clk.Now()
	var w *watchdog.Watchdog
	fired := 0
	w = watchdog.New(5*time.Second, func() {
		fired++
		fmt.Println("timeout", fired, "at", clk.Since(start))
		if fired < 3 {
			w.Reset()
		}
	}, watchdog.WithClock(clk))
	w.Start()
	clk.Advance(time.Minute)
	fmt.Println("running:", w.Running())
	// Output:
	// timeout 1 at 5s
	// timeout 2 at 10s
	// timeout 3 at 15s
	// running: false
}

func ExampleWithRepeat() {
	clk := clock.NewFake(time.Time{})
	start := clk.Now()
	w := watchdog.New(5*time.Second, func() { fmt.Println("silent at", clk.Since(start)) },
		watchdog.WithClock(clk), watchdog.WithRepeat())
	w.Start()
	clk.Advance(16 * time.Second)
	w.Stop()
	clk.Advance(time.Minute)
	// Output:
	// silent at 5s
	// silent at 10s
	// silent at 15s
}

func ExampleFileWatcher_Watch() {
	dir, _ := os.MkdirTemp("", "wd")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run", "heartbeat") // "run" is created by Watch

	fw, err := watchdog.NewFileWatcher()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fw.Close()
	beats := make(chan watchdog.Beat, 10)
	cancel, err := fw.Watch(path, func(b watchdog.Beat) { beats <- b })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cancel()

	os.WriteFile(path, nil, 0o644) // create: a beat
	b := <-beats
	fmt.Println(filepath.Base(b.Path), b.Op)
	now := time.Now()
	os.Chtimes(path, now, now) // touch: a beat
	b = <-beats
	fmt.Println(filepath.Base(b.Path), b.Op)
	// Output:
	// heartbeat CREATE
	// heartbeat CHMOD
}

func ExampleFileWatcher_NewWatchdog() {
	dir, _ := os.MkdirTemp("", "wd")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "heartbeat")
	os.WriteFile(path, nil, 0o644)

	clk := clock.NewFake(time.Time{})
	start := clk.Now()
	fw, err := watchdog.NewFileWatcher(watchdog.WithFileClock(clk))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fw.Close()
	beat := make(chan struct{}, 1)
	wd, err := fw.NewWatchdog(path, 10*time.Second,
		func() { fmt.Println("program silent; restart it at", clk.Since(start)) },
		watchdog.WithOnBeat(func(watchdog.Beat) { beat <- struct{}{} }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer wd.Close()
	wd.Start()

	clk.Advance(7 * time.Second)
	now := time.Now()
	os.Chtimes(path, now, now) // the program touches its heartbeat file
	<-beat
	clk.Advance(7 * time.Second)
	fmt.Println("alive at", clk.Since(start))
	clk.Advance(3 * time.Second)
	// Output:
	// alive at 14s
	// program silent; restart it at 17s
}
