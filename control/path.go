package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// SocketOff is the socket setting that disables the control socket.
const SocketOff = "off"

// ErrUnsafeDir is wrapped by RuntimeDir's error when the private
// directory exists but is not a directory of the user's own with mode
// 0700.
var ErrUnsafeDir = errors.New("unsafe runtime directory")

// RuntimeDir returns the directory for the supervisor's runtime files
// (SPEC section 18): $XDG_RUNTIME_DIR when it is set to an absolute path;
// else /run for root; else the private directory supervise-UID under
// $TMPDIR (when absolute) or /tmp. The private directory is created mode
// 0700 when missing; an existing one must be a directory, not a symbolic
// link, owned by the effective uid and of mode 0700, else RuntimeDir
// fails with an error wrapping ErrUnsafeDir, since anyone may create
// names in /tmp. The supervisor puts its control socket and the
// subdirectory of its notify sockets in it.
func RuntimeDir() (string, error) {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) {
		return filepath.Clean(dir), nil
	}
	uid := os.Geteuid()
	if uid == 0 {
		return "/run", nil
	}
	base := os.Getenv("TMPDIR")
	if !filepath.IsAbs(base) {
		base = "/tmp"
	}
	return privateDir(filepath.Join(base, "supervise-"+strconv.Itoa(uid)), uid)
}

// privateDir creates dir mode 0700 if missing and checks that it is a
// directory of uid's with mode 0700.
func privateDir(dir string, uid int) (string, error) {
	created := false
	if err := os.Mkdir(dir, 0o700); err == nil {
		created = true
	} else if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "", fmt.Errorf("%w: %s is a symbolic link (remove it, or set $XDG_RUNTIME_DIR or the socket)", ErrUnsafeDir, dir)
	case !fi.IsDir():
		return "", fmt.Errorf("%w: %s is not a directory (remove it, or set $XDG_RUNTIME_DIR or the socket)", ErrUnsafeDir, dir)
	case !ok || int64(st.Uid) != int64(uid):
		owner := "unknown"
		if ok {
			owner = strconv.Itoa(int(st.Uid))
		}
		return "", fmt.Errorf("%w: %s belongs to uid %s, not to this user (uid %d): someone else may have created it; remove it, or set $XDG_RUNTIME_DIR or the socket",
			ErrUnsafeDir, dir, owner, uid)
	}
	if created && fi.Mode().Perm() != 0o700 {
		// The umask narrowed our own new directory: widen it to 0700.
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("runtime directory: %w", err)
		}
		return dir, nil
	}
	if fi.Mode().Perm() != 0o700 {
		return "", fmt.Errorf("%w: %s has mode %04o, want 0700 (chmod 700 it if it is yours)", ErrUnsafeDir, dir, fi.Mode().Perm())
	}
	return dir, nil
}

// DefaultSocketPath returns where the control socket lives when nothing
// else is configured: supervise.sock in RuntimeDir, so
// $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, or
// /tmp/supervise-UID/supervise.sock.
func DefaultSocketPath() (string, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return "", fmt.Errorf("default control socket: %w", err)
	}
	return filepath.Join(dir, "supervise.sock"), nil
}

// SocketPath resolves the control socket path. The first non-empty of
// flag (-s), $SUPERVISE_SOCKET and configured (the config's socket key)
// wins; when all are empty the result is DefaultSocketPath. The value
// "off" at the winning level disables the socket: SocketPath then returns
// "" and false. The error is DefaultSocketPath's.
func SocketPath(flag, configured string) (path string, enabled bool, err error) {
	p := flag
	if p == "" {
		p = os.Getenv("SUPERVISE_SOCKET")
	}
	if p == "" {
		p = configured
	}
	switch p {
	case SocketOff:
		return "", false, nil
	case "":
		p, err := DefaultSocketPath()
		return p, err == nil, err
	}
	return p, true, nil
}
