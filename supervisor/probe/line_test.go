package probe

import (
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/supervise/supervise/clock"
)

func TestLineMatcher(t *testing.T) {
	clk := clock.NewFake(time.Time{})
	var passed []string
	m := NewLineMatcher(regexp.MustCompile(`worker \d+ ready`), 2, clk, func(l string) { passed = append(passed, l) })
	m.Line([]byte("starting"))
	m.Line([]byte("worker 1 ready"))
	if st := m.Status(); st.State != Unknown || st.Attempts != 1 || len(passed) != 0 {
		t.Fatalf("after one match of two: %+v %v", st, passed)
	}
	m.Line([]byte("worker 2 ready"))
	m.Line([]byte("worker 3 ready"))
	if st := m.Status(); st.State != Passing || st.Attempts != 2 || len(passed) != 1 || passed[0] != "worker 2 ready" {
		t.Fatalf("after two matches: %+v %v", st, passed)
	}
}

func TestLineMatcherStop(t *testing.T) {
	called := false
	m := NewLineMatcher(regexp.MustCompile(`ready`), 1, nil, func(string) { called = true })
	m.Stop()
	m.Line([]byte("ready"))
	if called || m.Status().State != Unknown {
		t.Fatal("a stopped matcher passed")
	}
}

// Both output streams deliver lines concurrently: the probe passes once.
func TestLineMatcherConcurrent(t *testing.T) {
	var mu sync.Mutex
	n := 0
	m := NewLineMatcher(regexp.MustCompile(`^ok$`), 50, nil, func(string) { mu.Lock(); n++; mu.Unlock() })
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				m.Line([]byte("ok"))
				m.Line([]byte("not ok"))
			}
		}()
	}
	wg.Wait()
	if n != 1 || m.Status().State != Passing {
		t.Fatalf("passed %d times, %+v", n, m.Status())
	}
}
