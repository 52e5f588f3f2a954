package probe

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/procs"
)

// reaper is the test binary's single reaper, which exec probes spawn
// through.
var reaper *procs.Reaper

// orphans receives the pids the reaper reaped that it did not spawn (the
// bare processes of BenchmarkStartProcessFloor).
var orphans = make(chan int, 64)

// modeEnv selects a helper mode when the test binary is re-executed.
const modeEnv = "PROBE_TEST_MODE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	var err error
	reaper, err = procs.NewReaper(procs.ReaperOptions{OnOrphan: func(pid int, _ unix.WaitStatus) {
		select {
		case orphans <- pid:
		default:
		}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	reaper.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
