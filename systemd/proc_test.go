package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestIsDescendant(t *testing.T) {
	// A shell starts a grandchild and prints its pid. The shell runs under
	// a name with a space and ")" to check that /proc/PID/stat is parsed
	// right.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "odd ) (x")
	if err := os.Symlink(sh, odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "-c", "sleep 30 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Command("kill", strconv.Itoa(grandchild)).Run()
	child, self := cmd.Process.Pid, os.Getpid()
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); err != nil || !strings.Contains(string(b), "(odd ) (x)") {
		t.Fatalf("child's stat does not show the odd name: %q, %v", b, err)
	}

	tests := []struct {
		pid, ancestor int
		want          bool
	}{
		{grandchild, child, true},
		{grandchild, self, true},
		{child, self, true},
		{self, self, true},
		{grandchild, 1, true},
		{self, child, false},
		{child, grandchild, false},
		{1, self, false},
		{0, self, false},
		{self, 0, false},
		{-1, -1, false},
		{1 << 30, self, false}, // no such process
	}
	for _, tt := range tests {
		if got := IsDescendant(tt.pid, tt.ancestor); got != tt.want {
			t.Errorf("IsDescendant(%d, %d) = %v, want %v", tt.pid, tt.ancestor, got, tt.want)
		}
	}
}

func TestParentPIDSelf(t *testing.T) {
	ppid, ok := parentPID(os.Getpid())
	if !ok || ppid != os.Getppid() {
		t.Errorf("parentPID(self) = %d, %v; want %d", ppid, ok, os.Getppid())
	}
}
