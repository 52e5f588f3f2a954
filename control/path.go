package control

import (
	"os"
	"path/filepath"
	"strconv"
)

// SocketOff is the socket setting that disables the control socket.
const SocketOff = "off"

// DefaultSocketPath returns where the control socket lives when nothing
// else is configured: $XDG_RUNTIME_DIR/supervise.sock when XDG_RUNTIME_DIR
// is set; otherwise /run/supervise.sock for root and
// /tmp/supervise-<uid>.sock for any other user.
func DefaultSocketPath() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "supervise.sock")
	}
	uid := os.Geteuid()
	if uid == 0 {
		return "/run/supervise.sock"
	}
	return "/tmp/supervise-" + strconv.Itoa(uid) + ".sock"
}

// SocketPath resolves the control socket path. The first non-empty of
// flag (-s), $SUPERVISE_SOCKET and configured (the config's socket key)
// wins; when all are empty the result is DefaultSocketPath. The value
// "off" at the winning level disables the socket: SocketPath then returns
// "" and false.
func SocketPath(flag, configured string) (path string, enabled bool) {
	p := flag
	if p == "" {
		p = os.Getenv("SUPERVISE_SOCKET")
	}
	if p == "" {
		p = configured
	}
	switch p {
	case SocketOff:
		return "", false
	case "":
		return DefaultSocketPath(), true
	}
	return p, true
}
