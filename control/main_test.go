package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary has helper modes, chosen by environment variables, that
// the peer-credential tests run under another uid.
const (
	// envCallPath: call the socket at the path with a status request.
	envCallPath = "CONTROL_TEST_CALL_PATH"
	// envListenPath: listen on the path with a plain listener (as a
	// squatter would), print "ready", then for each of two connections
	// count the bytes received until the client closes, and print them.
	envListenPath = "CONTROL_TEST_LISTEN_PATH"
	// envRuntimeDir: print RuntimeDir and DefaultSocketPath.
	envRuntimeDir = "CONTROL_TEST_RUNTIME_DIR"
)

// outcome is what a helper prints, as JSON on one line.
type outcome struct {
	UID      int      `json:"uid"`
	Response Response `json:"response"`
	Err      string   `json:"err,omitempty"`
	Dir      string   `json:"dir,omitempty"`
	Socket   string   `json:"socket,omitempty"`
	Received []int    `json:"received,omitempty"`
}

func TestMain(m *testing.M) {
	if os.Getenv(envCallPath) != "" || os.Getenv(envListenPath) != "" || os.Getenv(envRuntimeDir) != "" {
		os.Exit(helper())
	}
	goleak.VerifyTestMain(m)
}

func helper() int {
	out := outcome{UID: os.Getuid()}
	fail := func(err error) {
		if err != nil && out.Err == "" {
			out.Err = err.Error()
		}
	}
	switch {
	case os.Getenv(envCallPath) != "":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := Call(ctx, os.Getenv(envCallPath), Request{Command: CmdStatus})
		cancel()
		out.Response = resp
		fail(err)
	case os.Getenv(envRuntimeDir) != "":
		dir, err := RuntimeDir()
		fail(err)
		out.Dir = dir
		sock, err := DefaultSocketPath()
		fail(err)
		out.Socket = sock
	default:
		l, err := net.Listen("unix", os.Getenv(envListenPath))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		defer l.Close()
		fmt.Println("ready")
		for range 2 {
			c, err := l.Accept()
			if err != nil {
				fail(err)
				break
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			fail(err)
			c.Close()
			out.Received = append(out.Received, int(n))
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// copyTestBinary copies the test binary, which usually lives in a 0700
// build directory, where uid 65534 can run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	dir := socketDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	copyFile(t, exe, bin, 0o755)
	return bin
}

// nobody starts bin as uid 65534 in a helper mode chosen by env.
func nobody(bin string, env map[string]string) *exec.Cmd {
	cmd := exec.Command(bin, "-test.run=^$")
	// A race-enabled helper would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// runAsNobody runs a helper to its end and decodes what it printed.
func runAsNobody(t *testing.T, bin string, env map[string]string) outcome {
	t.Helper()
	cmd := nobody(bin, env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.Bytes())
	}
	var o outcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if o.UID != 65534 {
		t.Fatalf("helper ran as uid %d", o.UID)
	}
	return o
}

// squatter runs the listener helper as uid 65534 on path and returns,
// once it listens, a function that waits for its outcome.
func squatter(t *testing.T, bin, path string) func() outcome {
	t.Helper()
	cmd := nobody(bin, map[string]string{envListenPath: path})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); line != "ready\n" {
		t.Fatalf("squatter: %q, %v\n%s", line, err, stderr.Bytes())
	}
	return func() outcome {
		t.Helper()
		rest, _ := io.ReadAll(r)
		err := cmd.Wait()
		waited = true
		if err != nil {
			t.Fatalf("squatter: %v\n%s", err, stderr.Bytes())
		}
		var o outcome
		if err := json.Unmarshal(rest, &o); err != nil {
			t.Fatalf("squatter output %q: %v", rest, err)
		}
		return o
	}
}
