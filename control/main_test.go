package control

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// envCallPath makes the test binary act as a control client: it calls
// the socket named by the variable with a status request, prints the
// outcome as JSON on stdout and exits. The peer-credential tests run it
// under another uid.
const envCallPath = "CONTROL_TEST_CALL_PATH"

// callOutcome is what the client mode prints.
type callOutcome struct {
	UID      int      `json:"uid"`
	Response Response `json:"response"`
	Err      string   `json:"err,omitempty"`
}

func TestMain(m *testing.M) {
	if path := os.Getenv(envCallPath); path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := Call(ctx, path, Request{Command: CmdStatus})
		cancel()
		out := callOutcome{UID: os.Getuid(), Response: resp}
		if err != nil {
			out.Err = err.Error()
		}
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
