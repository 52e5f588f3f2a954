package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SPEC §18: as uid 65534 with HOME and XDG_RUNTIME_DIR unset, a read-only
// root file system with only /tmp writable (a tmpfs, like a pod's
// emptyDir) and no_new_privs, supervise runs the example image's very
// configuration (examples/container.toml) with no setting changed: its
// programs start, `status` answers through the default socket, `check`
// and `check --ready` pass, and its runtime files are in a private 0700
// directory of its own.
func TestUnprivilegedReadOnlyRoot(t *testing.T) {
	t.Parallel()
	if !isRoot() {
		t.Skip("needs root for unshare --mount and setpriv")
	}
	for _, tool := range []string{"unshare", "setpriv", "chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs(filepath.Join(moduleRoot, "examples", "container.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// Inside a private mount (and network) namespace: a read-only bind of
	// / to chroot into, a tmpfs on its /tmp holding the image's binary and
	// configuration, then the supervisor as nobody with no_new_privs and
	// an environment without HOME or XDG_RUNTIME_DIR.
	script := `set -e
R=` + q(root) + `
mount --make-rprivate /
mount --rbind / "$R"
mount -o remount,bind,ro "$R"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mkdir -p "$R/tmp/img"
cp ` + q(bin) + ` "$R/tmp/img/supervise"
cp ` + q(example) + ` "$R/tmp/img/supervise.toml"
chmod 755 "$R/tmp/img" "$R/tmp/img/supervise"; chmod 644 "$R/tmp/img/supervise.toml"
as_nobody() { chroot "$R" setpriv --reuid 65534 --regid 65534 --clear-groups --no-new-privs env -i PATH=/usr/bin:/bin SUPERVISE_CONFIG=/tmp/img/supervise.toml GORACE="$GORACE" "$@"; }
(exec chroot "$R" setpriv --reuid 65534 --regid 65534 --clear-groups --no-new-privs env -i PATH=/usr/bin:/bin SUPERVISE_CONFIG=/tmp/img/supervise.toml GORACE="$GORACE" /tmp/img/supervise > "$R/tmp/supervise.log" 2>&1) &
pid=$!
i=0
until as_nobody /tmp/img/supervise status > "$R/tmp/status.txt" 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "NO STATUS"; cat "$R/tmp/status.txt"; cat "$R/tmp/supervise.log"; kill $pid; exit 1; }
	sleep 0.1
done
echo "== status"; cat "$R/tmp/status.txt"
i=0
until as_nobody /tmp/img/supervise check > /dev/null 2>&1 && as_nobody /tmp/img/supervise check --ready > /dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || break
	sleep 0.1
done
echo "== check"; as_nobody /tmp/img/supervise check || echo "CHECK FAILED"
echo "== ready"; as_nobody /tmp/img/supervise check --ready || echo "READY FAILED"
echo "== rundir"; stat -c '%a %u %F' "$R/tmp/supervise-65534"
echo "== writable root"; if as_nobody sh -c 'echo x > /etc/supervise-probe' 2>/dev/null; then echo "ROOT WRITABLE"; fi
kill -TERM $pid
wait $pid && echo "== exit 0" || echo "== exit $?"
echo "== log"; cat "$R/tmp/supervise.log"
`
	cmd := exec.Command("unshare", "--mount", "--net", "--fork", "sh", "-c", script)
	cmd.Env = childEnv()
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("no end within 60 s:\n%s", out)
	}
	text := string(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for _, bad := range []string{"NO STATUS", "CHECK FAILED", "READY FAILED", "ROOT WRITABLE"} {
		if strings.Contains(text, bad) {
			t.Fatalf("%s:\n%s", bad, text)
		}
	}
	for _, want := range []string{"app ", "worker ", "running", "== rundir\n700 65534 directory", "== exit 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
