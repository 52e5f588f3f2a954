package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inheritedFiles is how many descriptors the supervisor is started with.
const inheritedFiles = 10000

// openFiles opens n descriptors of /dev/null, closed when the test ends.
func openFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	files := make([]*os.File, 0, n)
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	for range n {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// runWithInherited runs the supervise binary with args and files as its
// descriptors 3 and up, without close-on-exec, as a careless parent would
// leave them, and returns its exit code and output.
func runWithInherited(t *testing.T, files []*os.File, dir string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("supervise %s did not end within 60s:\n%s", strings.Join(args, " "), out.String())
	}
	return exitCode(cmd.ProcessState, err), out.String()
}

// listFDs is a script that writes the descriptors of a program it starts
// (ls, as `ls -l /proc/self/fd` lists them) to the file named by its first
// argument. The shell's own are not listed: dash keeps a close-on-exec copy
// of a redirected descriptor while it runs a command.
const listFDs = `ls -l /proc/self/fd > "$0.tmp" && mv "$0.tmp" "$0"`

// readFDList returns the descriptors in the list written by listFDs, in
// order and cut to a readable length, without the one ls reads the list
// from.
func readFDList(t *testing.T, path, log string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the program did not list its descriptors: %v\nsupervisor output:\n%s", err, log)
	}
	var fds []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// lr-x------ 1 root root 64 Dec  2 12:13 3 -> /proc/16213/fd
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue
		}
		if target := f[len(f)-1]; strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue
		}
		fds = append(fds, f[len(f)-3])
	}
	slices.SortFunc(fds, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if len(fds) > 8 {
		return fmt.Sprintf("%s ... (%d descriptors)", strings.Join(fds[:8], " "), len(fds))
	}
	return strings.Join(fds, " ")
}

// TestInheritedDescriptorsNotPassedOn starts the supervisor with 10,000
// inheritable descriptors: its programs (single-command mode, a config's
// program and a notify program) must hold only stdin, stdout and stderr.
func TestInheritedDescriptorsNotPassedOn(t *testing.T) {
	t.Parallel()
	want := "0 1 2"
	// One set of descriptors for both runs, one run at a time: the test
	// process has a limit on open files too.
	files := openFiles(t, inheritedFiles)

	t.Run("single command", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "fds")
		code, log := runWithInherited(t, files, dir, "--", "/bin/sh", "-c", listFDs, out)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, log)
		}
		if got := readFDList(t, out, log); got != want {
			t.Errorf("the command holds descriptors %s, want %s", got, want)
		}
	})

	t.Run("config", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(shortDir(t), "ctl.sock")
		cfg := filepath.Join(dir, "supervise.toml")
		text := fmt.Sprintf(`[supervisor]
socket = %s
log_level = "debug"

[defaults]
directory = %s
restart = "never"

[programs.plain]
command = ["/bin/sh", "-c", %s, "plain.fds"]

[programs.notified]
command = ["/bin/sh", "-c", %s, "notified.fds"]
notify = true
`, q(sock), q(dir), q(listFDs), q(listFDs))
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		code, log := runWithInherited(t, files, dir, "run", "-c", cfg)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, log)
		}
		for _, name := range []string{"plain", "notified"} {
			if got := readFDList(t, filepath.Join(dir, name+".fds"), log); got != want {
				t.Errorf("program %s holds descriptors %s, want %s", name, got, want)
			}
		}
	})
}
