// Package trustedpath creates, opens and checks directories without
// following a symbolic link that another user could have planted.
//
// A symbolic link is trusted when it is owned by root or by this process's
// effective user: those are the only users who could have made it point
// where it points. Every other link met on the way, at any component of a
// path, is refused with a *LinkError naming the link and its owner. An
// existing component that is neither a directory nor a trusted link is an
// error (ENOTDIR).
//
// The walk goes from / one component at a time: each component is opened
// with openat(O_PATH|O_NOFOLLOW) relative to the descriptor of the
// directory before it, its type and owner are read with fstat on that
// descriptor, a link's target is read from the same descriptor, and a
// missing directory is made with mkdirat in the directory already open. No
// path is looked up twice, so nothing can be swapped between the check and
// the use: a directory replaced by a link mid-walk is seen as a link.
package trustedpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrustedLink is matched (errors.Is) by every *LinkError.
var ErrUntrustedLink = errors.New("trustedpath: symbolic link owned by another user")

// ErrNotPrivate is matched by the errors of CheckPrivateDir for a directory
// that is not the effective user's own with mode 0700.
var ErrNotPrivate = errors.New("trustedpath: not a private directory")

// LinkError reports a symbolic link that is owned by neither root nor the
// effective user, met while walking a path.
type LinkError struct {
	// Path is the link, as reached through the walk (earlier trusted links
	// resolved).
	Path string
	// UID is the link's owner.
	UID int
	// Target is where the link points; it was not followed.
	Target string
}

// Error names the link, its owner and the users whose links are trusted.
func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link (to %q) owned by uid %d, not by root or uid %d: refusing to follow it",
		e.Path, e.Target, e.UID, geteuid())
}

// Is makes errors.Is(err, ErrUntrustedLink) true.
func (e *LinkError) Is(target error) bool { return target == ErrUntrustedLink }

// geteuid is a seam for tests, which run as root.
var geteuid = os.Geteuid

// maxLinks is how many symbolic links one walk follows, as the kernel's
// MAXSYMLINKS.
const maxLinks = 40

// maxRetries bounds how often a walk retries a directory that it made and
// that was gone before it could open it.
const maxRetries = 100

// MkdirAll creates the directory path and every missing parent, with
// permission bits perm (before the umask), like os.MkdirAll, following only
// trusted symbolic links (see the package documentation). An existing
// directory, or a trusted link to one, is fine. The error names the
// component at fault.
func MkdirAll(path string, perm fs.FileMode) error {
	fd, err := walk(path, true, uint32(perm.Perm()))
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// OpenDir opens the existing directory path for reading (as a directory
// descriptor to use with *at system calls or to fsync), following only
// trusted symbolic links. A missing component gives an error matching
// fs.ErrNotExist.
func OpenDir(path string) (*os.File, error) {
	fd, err := walk(path, false, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("trustedpath: open %s: %w", path, err)
	}
	return os.NewFile(uintptr(d), path), nil
}

// CheckPrivateDir verifies that path is a directory (not a symbolic link to
// one) owned by the effective user with no permission bits for group or
// others (mode 0700 or narrower), reached through trusted links only. The
// errors match ErrNotPrivate (wrong owner, mode or type), ErrUntrustedLink
// or fs.ErrNotExist, and name the path.
func CheckPrivateDir(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("trustedpath: check %s: %w", path, err)
	}
	dir, base := filepath.Split(abs)
	if base == "" {
		return fmt.Errorf("%w: %s is the root directory", ErrNotPrivate, abs)
	}
	parent, err := walk(dir, false, 0)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	fd, err := unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("trustedpath: check %s: %w", abs, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("trustedpath: check %s: %w", abs, err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%w: %s is a symbolic link", ErrNotPrivate, abs)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%w: %s is not a directory", ErrNotPrivate, abs)
	case int(st.Uid) != geteuid():
		return fmt.Errorf("%w: %s is owned by uid %d, not uid %d", ErrNotPrivate, abs, st.Uid, geteuid())
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%w: %s has mode %04o, which gives access to group or others (want 0700)", ErrNotPrivate, abs, st.Mode&0o7777)
	}
	return nil
}

// walk resolves path from /, following trusted links only and, if create,
// making missing directories with perm. It returns an O_PATH descriptor of
// the directory path names.
func walk(path string, create bool, perm uint32) (int, error) {
	op := "open"
	if create {
		op = "mkdir"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return -1, fmt.Errorf("trustedpath: %s %s: %w", op, path, err)
	}
	fail := func(at string, err error) (int, error) {
		var le *LinkError
		if at == abs || errors.As(err, &le) {
			return -1, fmt.Errorf("trustedpath: %s %s: %w", op, abs, err)
		}
		return -1, fmt.Errorf("trustedpath: %s %s: %s: %w", op, abs, at, err)
	}
	cur, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("/", err)
	}
	closeCur := true
	defer func() {
		if closeCur {
			unix.Close(cur)
		}
	}()
	curPath := "/"
	// todo holds the components still to walk, the next one last.
	todo := components(nil, abs)
	links, retries := 0, 0
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		here := filepath.Join(curPath, name)
		fd, err := unix.Openat(cur, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if retries++; retries > maxRetries {
				return fail(here, errors.New("removed as often as it was made"))
			}
			if err := unix.Mkdirat(cur, name, perm); err != nil && !errors.Is(err, unix.EEXIST) {
				return fail(here, err)
			}
			continue
		}
		if err != nil {
			return fail(here, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fail(here, err)
		}
		todo = todo[:len(todo)-1]
		retries = 0
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			unix.Close(cur)
			cur, curPath = fd, here
		case unix.S_IFLNK:
			target, err := readlink(fd)
			unix.Close(fd)
			if err != nil {
				return fail(here, err)
			}
			if uid := int(st.Uid); uid != 0 && uid != geteuid() {
				return fail(here, &LinkError{Path: here, UID: uid, Target: target})
			}
			if links++; links > maxLinks {
				return fail(here, unix.ELOOP)
			}
			if target == "" {
				return fail(here, unix.ENOENT)
			}
			todo = components(todo, target)
			if strings.HasPrefix(target, "/") {
				root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fail("/", err)
				}
				unix.Close(cur)
				cur, curPath = root, "/"
			}
		default:
			unix.Close(fd)
			return fail(here, fmt.Errorf("%w (%s)", unix.ENOTDIR, fileType(st.Mode)))
		}
	}
	closeCur = false
	return cur, nil
}

// components pushes the components of p onto todo (so that the first is
// last), dropping empty ones and ".".
func components(todo []string, p string) []string {
	parts := strings.Split(p, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" && parts[i] != "." {
			todo = append(todo, parts[i])
		}
	}
	return todo
}

// readlink reads the target of the link open as fd (O_PATH|O_NOFOLLOW).
func readlink(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", fmt.Errorf("readlink: %w", err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}
