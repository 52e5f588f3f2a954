package watchdog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inotifyInstances counts this process's open inotify instances.
func inotifyInstances(b *testing.B) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(l, "inotify") {
			n++
		}
	}
	return n
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkFileWatchdog1000 watches 1000 heartbeat files in 100 directories
// with one FileWatcher. Each iteration re-arms every watchdog, touches every
// file once (a real fsnotify beat) and waits for all 1000 timeouts; the
// detection latency of a timeout is the time from its deadline (last beat +
// timeout) to the hook call.
func BenchmarkFileWatchdog1000(b *testing.B) {
	const dirs, perDir = 100, 10
	const timeout = 300 * time.Millisecond
	base := b.TempDir()
	var paths []string
	for d := 0; d < dirs; d++ {
		for f := 0; f < perDir; f++ {
			p := filepath.Join(base, fmt.Sprint("d", d), fmt.Sprint("hb", f))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, nil, 0o644)
			paths = append(paths, p)
		}
	}
	inotifyBefore := inotifyInstances(b)
	heapBefore := heapInUse()
	fw, err := NewFileWatcher()
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()

	var mu sync.Mutex
	var late []time.Duration
	var fired, beats atomic.Int64
	done := make(chan struct{}, 1)
	wds := make([]*FileWatchdog, len(paths))
	for i, p := range paths {
		var wd *FileWatchdog
		wd, err = fw.NewWatchdog(p, timeout, func() {
			l := wd.SinceLastPing() - timeout
			mu.Lock()
			late = append(late, l)
			mu.Unlock()
			if fired.Add(1)%int64(len(paths)) == 0 {
				done <- struct{}{}
			}
		}, WithOnBeat(func(Beat) { beats.Add(1) }))
		if err != nil {
			b.Fatal(err)
		}
		wds[i] = wd
	}
	heapAfter := heapInUse()
	instances := inotifyInstances(b) - inotifyBefore
	if s := fw.Stats(); s.Directories != dirs || s.Files != len(paths) {
		b.Fatalf("stats %+v", s)
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		beatsBefore := beats.Load()
		for _, wd := range wds {
			wd.Reset()
		}
		now := time.Now()
		for _, p := range paths {
			os.Chtimes(p, now, now)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d timeouts", fired.Load())
		}
		if got := beats.Load() - beatsBefore; got < int64(len(paths)) {
			b.Logf("round %d: %d beats for %d touches", i, got, len(paths))
		}
	}
	b.StopTimer()
	for _, wd := range wds {
		wd.Close()
	}
	slices.Sort(late)
	pct := func(p float64) float64 {
		return float64(late[int(p*float64(len(late)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-late-ms")
	b.ReportMetric(pct(0.99), "p99-late-ms")
	b.ReportMetric(pct(1), "max-late-ms")
	b.ReportMetric(float64(heapAfter-heapBefore)/float64(len(paths)), "heap-B/file")
	b.ReportMetric(float64(instances), "inotify-instances")
	b.ReportMetric(dirs, "dir-watches")
}
