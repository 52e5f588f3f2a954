package trustedpath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown symbolic links")
	}
}

// symlink makes a link at path to target owned by uid.
func symlink(t *testing.T, target, path string, uid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

func TestMkdirAllCreatesMissing(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "a", "b", "c")
	if err := MkdirAll(path, 0o750); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	if got := fi.Mode().Perm() &^ 0o750; got != 0 {
		t.Errorf("mode %v has bits outside 0750", fi.Mode().Perm())
	}
	// Existing: fine. Relative: fine.
	if err := MkdirAll(path, 0o750); err != nil {
		t.Errorf("existing directory: %v", err)
	}
	t.Chdir(base)
	if err := MkdirAll("a/x/../y", 0o755); err != nil || !isDir(filepath.Join(base, "a", "y")) {
		t.Errorf("relative path: %v", err)
	}
	// Deep paths are not limited by the retry bound.
	deep := base
	for range 150 {
		deep = filepath.Join(deep, "d")
	}
	if err := MkdirAll(deep, 0o755); err != nil || !isDir(deep) {
		t.Errorf("deep path: %v", err)
	}
}

func TestMkdirAllRefusesForeignLink(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	// An attacker's link at an intermediate component, and at the last one.
	symlink(t, victim, filepath.Join(base, "hb"), nobody)
	for _, p := range []string{filepath.Join(base, "hb", "sub"), filepath.Join(base, "hb")} {
		err := MkdirAll(p, 0o755)
		var le *LinkError
		if !errors.As(err, &le) || !errors.Is(err, ErrUntrustedLink) {
			t.Fatalf("MkdirAll(%s) = %v, want a *LinkError", p, err)
		}
		if le.Path != filepath.Join(base, "hb") || le.UID != nobody || le.Target != victim {
			t.Errorf("LinkError %+v", le)
		}
		for _, want := range []string{filepath.Join(base, "hb"), "uid 65534", "symbolic link"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("something was created through the link: %v", entries)
	}
	// A foreign link reached through a trusted one is refused too.
	symlink(t, filepath.Join(base, "hb"), filepath.Join(base, "mine"), 0)
	if err := MkdirAll(filepath.Join(base, "mine", "x"), 0o755); !errors.Is(err, ErrUntrustedLink) {
		t.Errorf("foreign link behind a trusted one: %v", err)
	}
}

func TestMkdirAllFollowsTrustedLinks(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	old := geteuid
	t.Cleanup(func() { geteuid = old })
	geteuid = func() int { return 1000 } // the effective user, for trust

	symlink(t, real, filepath.Join(base, "byroot"), 0)
	symlink(t, "real", filepath.Join(base, "byme"), 1000)         // relative
	symlink(t, "../real/deeper", filepath.Join(real, "up"), 1000) // through ..
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(base, "byroot", "a"), filepath.Join(real, "a")},
		{filepath.Join(base, "byme", "b", "c"), filepath.Join(real, "b", "c")},
		{filepath.Join(base, "byme", "up", "d"), filepath.Join(real, "deeper", "d")},
		{filepath.Join(base, "byroot"), real},
	} {
		if err := MkdirAll(tc.path, 0o755); err != nil {
			t.Errorf("MkdirAll(%s): %v", tc.path, err)
		} else if !isDir(tc.want) {
			t.Errorf("MkdirAll(%s) did not make %s", tc.path, tc.want)
		}
	}
	// Root's links stay trusted; a third user's are not.
	symlink(t, real, filepath.Join(base, "other"), nobody)
	if err := MkdirAll(filepath.Join(base, "other", "e"), 0o755); !errors.Is(err, ErrUntrustedLink) {
		t.Errorf("link of uid %d: %v", nobody, err)
	}
	// A dangling trusted link: its target is made.
	symlink(t, filepath.Join(base, "later"), filepath.Join(base, "dangling"), 0)
	if err := MkdirAll(filepath.Join(base, "dangling", "f"), 0o755); err != nil || !isDir(filepath.Join(base, "later", "f")) {
		t.Errorf("dangling trusted link: %v", err)
	}
}

func TestMkdirAllErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "sub")} {
		err := MkdirAll(p, 0o755)
		if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "regular file") {
			t.Errorf("MkdirAll(%s) = %v, want ENOTDIR naming %s", p, err, file)
		}
	}
	fifo := filepath.Join(base, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(fifo, "x"), 0o755); !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("through a FIFO: %v", err)
	}
	loop := filepath.Join(base, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(loop, "x"), 0o755); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("link loop: %v", err)
	}
	ro := filepath.Join(base, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := MkdirAll(filepath.Join(ro, "x"), 0o755); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("read-only parent: %v", err)
		}
	}
}

// TestMkdirAllNoRace swaps a component between a directory and a foreign
// link while MkdirAll runs: nothing may ever be made through the link.
func TestMkdirAllNoRace(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	spot, linkv := filepath.Join(base, "spot"), filepath.Join(base, "aslink")
	if err := os.Mkdir(spot, 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, victim, linkv, nobody)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Exchange the directory and the link atomically, over and over:
		// spot is always one or the other.
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, spot, unix.AT_FDCWD, linkv, unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var refused, made int
	for range 3000 {
		err := MkdirAll(filepath.Join(spot, "x", "y"), 0o755)
		switch {
		case err == nil:
			made++
		case errors.Is(err, ErrUntrustedLink):
			refused++
		}
	}
	stop.Store(true)
	wg.Wait()
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Fatalf("made %v through the foreign link", entries)
	}
	t.Logf("%d made, %d refused at the link", made, refused)
	if refused == 0 {
		t.Log("the swap never showed the link to a walk: the race was not exercised")
	}
}

func TestOpenDir(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	d, err := OpenDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Errorf("sync: %v", err)
	}
	names, err := d.Readdirnames(-1)
	if err != nil || len(names) != 0 {
		t.Errorf("read: %v %v", names, err)
	}
	d.Close()
	if _, err := OpenDir(filepath.Join(base, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	symlink(t, base, filepath.Join(base, "foreign"), nobody)
	if _, err := OpenDir(filepath.Join(base, "foreign")); !errors.Is(err, ErrUntrustedLink) {
		t.Errorf("foreign link: %v", err)
	}
}

func TestCheckPrivateDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	if err := CheckPrivateDir(private); err != nil {
		t.Errorf("0700: %v", err)
	}
	if err := CheckPrivateDir(mk("readonly", 0o500)); err != nil {
		t.Errorf("0500: %v", err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{mk("open", 0o755), "mode 0755"},
		{mk("group", 0o770), "mode 0770"},
		{mk("others", 0o703), "mode 0703"},
	} {
		if err := CheckPrivateDir(tc.path); !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("CheckPrivateDir(%s) = %v, want ErrNotPrivate saying %q", tc.path, err, tc.want)
		}
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if err := CheckPrivateDir(file); !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: %v", err)
	}
	if err := CheckPrivateDir(filepath.Join(base, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	// A link to a private directory is not one, even our own.
	link := filepath.Join(base, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivateDir(link); !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("link: %v", err)
	}
	if os.Geteuid() == 0 {
		theirs := mk("theirs", 0o700)
		if err := os.Chown(theirs, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if err := CheckPrivateDir(theirs); !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "is owned by uid 65534") {
			t.Errorf("another user's: %v", err)
		}
		// Reached through a foreign link: refused before the check.
		symlink(t, base, filepath.Join(base, "via"), nobody)
		if err := CheckPrivateDir(filepath.Join(base, "via", "private")); !errors.Is(err, ErrUntrustedLink) {
			t.Errorf("through a foreign link: %v", err)
		}
	}
}
