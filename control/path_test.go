package control

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRuntimeDirXDG(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000/")
	if got, err := RuntimeDir(); got != "/run/user/1000" || err != nil {
		t.Errorf("with XDG_RUNTIME_DIR: %q, %v", got, err)
	}
	if got, err := DefaultSocketPath(); got != "/run/user/1000/supervise.sock" || err != nil {
		t.Errorf("DefaultSocketPath with XDG_RUNTIME_DIR: %q, %v", got, err)
	}
	// A relative value is invalid (XDG Base Directory spec): ignored.
	t.Setenv("XDG_RUNTIME_DIR", "relative/dir")
	got, err := RuntimeDir()
	if err != nil || strings.Contains(got, "relative") {
		t.Errorf("with a relative XDG_RUNTIME_DIR: %q, %v", got, err)
	}
}

func TestRuntimeDirRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got, err := RuntimeDir(); got != "/run" || err != nil {
		t.Errorf("as root: %q, %v", got, err)
	}
	if got, err := DefaultSocketPath(); got != "/run/supervise.sock" || err != nil {
		t.Errorf("DefaultSocketPath as root: %q, %v", got, err)
	}
}

// A user without $XDG_RUNTIME_DIR gets a private directory under $TMPDIR,
// created mode 0700; run as uid 65534 through the test binary.
func TestRuntimeDirUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the test binary as another uid")
	}
	base := socketDir(t)
	if err := os.Chmod(base, 0o1777); err != nil {
		t.Fatal(err)
	}
	bin := copyTestBinary(t)
	o := runAsNobody(t, bin, map[string]string{envRuntimeDir: "1", "TMPDIR": base, "XDG_RUNTIME_DIR": ""})
	want := filepath.Join(base, "supervise-65534")
	if o.Err != "" || o.Dir != want || o.Socket != want+"/supervise.sock" {
		t.Fatalf("as uid 65534: %+v, want dir %s", o, want)
	}
	fi, err := os.Lstat(want)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o700 || st.Uid != 65534 {
		t.Errorf("created %v owned by %d, want a 0700 directory of uid 65534", fi.Mode(), st.Uid)
	}
	// Again: the existing directory is accepted as it is.
	if o := runAsNobody(t, bin, map[string]string{envRuntimeDir: "1", "TMPDIR": base, "XDG_RUNTIME_DIR": ""}); o.Err != "" || o.Dir != want {
		t.Errorf("second run: %+v", o)
	}
	// Squatted by root: refused, as anyone else's would be.
	if err := os.Chown(want, 0, 0); err != nil {
		t.Fatal(err)
	}
	o = runAsNobody(t, bin, map[string]string{envRuntimeDir: "1", "TMPDIR": base, "XDG_RUNTIME_DIR": ""})
	if !strings.Contains(o.Err, want+" belongs to uid 0, not to this user (uid 65534)") || o.Socket != "" {
		t.Errorf("squatted directory: %+v", o)
	}
	// Without $TMPDIR, /tmp.
	const tmp = "/tmp/supervise-65534"
	if _, err := os.Lstat(tmp); errors.Is(err, fs.ErrNotExist) {
		t.Cleanup(func() { os.RemoveAll(tmp) })
	}
	o = runAsNobody(t, bin, map[string]string{envRuntimeDir: "1", "TMPDIR": "", "XDG_RUNTIME_DIR": ""})
	if o.Dir != tmp && !strings.Contains(o.Err, tmp) {
		t.Errorf("without TMPDIR: %+v", o)
	}
}

func TestPrivateDir(t *testing.T) {
	uid := os.Geteuid()
	base := socketDir(t)

	// Created 0700 whatever the umask.
	dir := filepath.Join(base, "new")
	old := syscall.Umask(0o277)
	got, err := privateDir(dir, uid)
	syscall.Umask(old)
	if err != nil || got != dir {
		t.Fatalf("privateDir(new) = %q, %v", got, err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created %v, %v; want a 0700 directory", fi.Mode(), err)
	}

	refused := func(name, want string) {
		t.Helper()
		_, err := privateDir(filepath.Join(base, name), uid)
		if !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrUnsafeDir saying %q", name, err, want)
		}
	}
	os.Mkdir(filepath.Join(base, "wide"), 0o755)
	os.Chmod(filepath.Join(base, "wide"), 0o755)
	refused("wide", "has mode 0755, want 0700")
	os.Symlink(dir, filepath.Join(base, "link"))
	refused("link", "is a symbolic link")
	os.WriteFile(filepath.Join(base, "file"), nil, 0o600)
	refused("file", "is not a directory")
	if uid == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused("other", "belongs to uid 65534, not to this user (uid 0)")
	}
	// The refused paths were left alone.
	if fi, err := os.Lstat(filepath.Join(base, "wide")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("wide directory changed: %v %v", fi.Mode(), err)
	}
	if _, err := privateDir(filepath.Join(base, "missing", "deeper"), uid); err == nil || errors.Is(err, ErrUnsafeDir) {
		t.Errorf("a missing parent: %v", err)
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/xdg")
	tests := []struct {
		name, flag, env, configured string
		want                        string
		enabled                     bool
	}{
		{"default", "", "", "", "/xdg/supervise.sock", true},
		{"config", "", "", "/c.sock", "/c.sock", true},
		{"env beats config", "", "/e.sock", "/c.sock", "/e.sock", true},
		{"flag beats env", "/f.sock", "/e.sock", "/c.sock", "/f.sock", true},
		{"config off", "", "", "off", "", false},
		{"env overrides config off", "", "/e.sock", "off", "/e.sock", true},
		{"env off", "", "off", "/c.sock", "", false},
		{"flag off", "off", "/e.sock", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SUPERVISE_SOCKET", tt.env)
			got, enabled, err := SocketPath(tt.flag, tt.configured)
			if got != tt.want || enabled != tt.enabled || err != nil {
				t.Errorf("SocketPath(%q, %q) with env %q = %q, %v, %v; want %q, %v",
					tt.flag, tt.configured, tt.env, got, enabled, err, tt.want, tt.enabled)
			}
		})
	}
}
