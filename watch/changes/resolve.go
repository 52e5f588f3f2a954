package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// role is what a watched name is to a path.
type role uint8

const (
	// roleFinal: the name of the file the path leads to (or would, once it
	// exists).
	roleFinal role = iota
	// roleLink: a symbolic link on the way.
	roleLink
	// roleMissing: a directory on the way that does not exist (or is not
	// a directory).
	roleMissing
)

// dep is a name in a watched directory that a path depends on.
type dep struct {
	wd   int32
	name string
	role role
}

// finalState is what a path leads to.
type finalState struct {
	exists   bool   // a file that is not a directory
	real     string // its path without symbolic links
	dev, ino uint64
}

func (a finalState) same(b finalState) bool {
	return a.exists == b.exists && a.real == b.real && a.dev == b.dev && a.ino == b.ino
}

// target is one watched file path: an AddFile registration or a glob's
// match.
type target struct {
	path      string
	glob      *glob // the glob it is a match of, or nil
	cancelled bool
	deps      []dep
	wds       []int32 // the watches its deps need
	final     finalState
}

func (t *target) role(wd int32, name string) (role, bool) {
	for _, d := range t.deps {
		if d.wd == wd && d.name == name {
			return d.role, true
		}
	}
	return 0, false
}

func (t *target) uses(wd int32) bool { return slices.Contains(t.wds, wd) }

// glob is one AddGlob registration.
type glob struct {
	dir, pattern string
	cancelled    bool
	deps         []dep   // names on the way to the directory, and its own
	wds          []int32 // the watches they and the directory need
	dirWd        int32   // the directory's watch, -1 while it is missing
	real         string  // the directory's path without symbolic links
	matches      map[string]*target
}

func (g *glob) match(name string) bool {
	if strings.HasPrefix(name, ".") && !strings.HasPrefix(g.pattern, ".") {
		return false
	}
	ok, _ := filepath.Match(g.pattern, name)
	return ok
}

func (g *glob) depends(wd int32, name string) bool {
	for _, d := range g.deps {
		if d.wd == wd && d.name == name {
			return true
		}
	}
	return false
}

func (g *glob) uses(wd int32) bool { return slices.Contains(g.wds, wd) }

// rebuild re-resolves t's path, watching what it needs.
func (w *Watcher) rebuild(t *target) error {
	res, err := w.resolve(t.path, false)
	t.deps, t.wds, t.final = res.deps, res.wds, res.final
	return err
}

// rebuildGlob re-resolves g's directory and lists its matches. With out
// nil (at AddGlob) it reports nothing; else it appends to *out: Removed for
// each match gone, and for each match there, Rescan when op is Rescan,
// else Replaced when it leads to a different complete file than before.
func (w *Watcher) rebuildGlob(g *glob, out *[]report, op Op) error {
	res, err := w.resolve(g.dir, true)
	g.deps, g.wds, g.dirWd, g.real = res.deps, res.wds, res.dirWd, res.real
	var names []string
	if g.dirWd >= 0 {
		entries, rerr := os.ReadDir(g.real)
		if rerr != nil {
			err = errors.Join(err, rerr)
		}
		for _, e := range entries {
			if !e.IsDir() && g.match(e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	gone := make([]string, 0, len(g.matches))
	for name := range g.matches {
		if !slices.Contains(names, name) {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		t := g.matches[name]
		delete(g.matches, name)
		if out != nil && t.final.exists {
			*out = append(*out, report{Change{t.path, Removed}, t})
		}
	}
	for _, name := range names {
		t := g.matches[name]
		if t == nil {
			t = &target{path: filepath.Join(g.dir, name), glob: g}
			g.matches[name] = t
		}
		if out == nil {
			w.refresh(t)
			continue
		}
		if op == Rescan {
			existed := t.final.exists
			w.refresh(t)
			switch {
			case t.final.exists:
				*out = append(*out, report{Change{t.path, Rescan}, t})
			case existed:
				*out = append(*out, report{Change{t.path, Removed}, t})
			}
			continue
		}
		*out = w.restate(t, *out, nil)
	}
	return err
}

// resolution is what resolve found.
type resolution struct {
	deps  []dep
	wds   []int32
	final finalState // for a file
	dirWd int32      // for a directory: its watch, or -1
	real  string     // for a directory: its path without links
}

// errRetry says that the file system changed under resolve.
var errRetry = errors.New("changed while resolving")

// maxAttempts bounds how often resolve starts over after a change under it.
const maxAttempts = 10

// maxLinks is how many symbolic links one resolution follows (the kernel's
// MAXSYMLINKS).
const maxLinks = 40

// resolve follows path from /, one component at a time, and watches each
// directory holding a name the path depends on before looking at the name
// (so a change right after the look gives an event): the last component,
// every symbolic link, and the first missing directory. With wantDir the
// path names a directory, which is watched too.
func (w *Watcher) resolve(path string, wantDir bool) (resolution, error) {
	var res resolution
	var err error
	for range maxAttempts {
		res, err = w.resolveOnce(path, wantDir)
		if !errors.Is(err, errRetry) {
			return res, err
		}
	}
	return res, fmt.Errorf("%s keeps changing: %w", path, err)
}

func (w *Watcher) resolveOnce(path string, wantDir bool) (resolution, error) {
	res := resolution{dirWd: -1}
	watch := func(dir string) (int32, error) {
		wd, err := w.addWatch(dir)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return -1, errRetry
			}
			return -1, err
		}
		if !slices.Contains(res.wds, wd) {
			res.wds = append(res.wds, wd)
		}
		return wd, nil
	}
	cur := "/"
	todo := components(nil, path)
	links := 0
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if name == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		here := filepath.Join(cur, name)
		last := len(todo) == 0
		wd := int32(-1)
		if last {
			var err error
			if wd, err = watch(cur); err != nil {
				return res, err
			}
		}
		fi, err := os.Lstat(here)
		if err != nil && !last && isGone(err) {
			if wd, err = watch(cur); err != nil {
				return res, err
			}
			// It may have appeared before the watch was in place.
			if fi, err = os.Lstat(here); err != nil && isGone(err) {
				res.deps = append(res.deps, dep{wd, name, roleMissing})
				return res, nil
			}
		}
		if err != nil {
			if last {
				res.deps = append(res.deps, dep{wd, name, roleFinal})
				if isGone(err) {
					return res, nil
				}
			}
			return res, err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if wd < 0 {
				if wd, err = watch(cur); err != nil {
					return res, err
				}
			}
			res.deps = append(res.deps, dep{wd, name, roleLink})
			target, err := os.Readlink(here)
			if err != nil {
				if isGone(err) || errors.Is(err, unix.EINVAL) {
					return res, errRetry
				}
				return res, err
			}
			if links++; links > maxLinks {
				return res, fmt.Errorf("%s: %w", here, unix.ELOOP)
			}
			todo = components(todo, target)
			if filepath.IsAbs(target) {
				cur = "/"
			}
		case fi.IsDir() && !last:
			cur = here
		case fi.IsDir():
			res.deps = append(res.deps, dep{wd, name, roleFinal})
			if wantDir {
				dwd, err := watch(here)
				if err != nil {
					return res, err
				}
				res.dirWd, res.real = dwd, here
			}
			return res, nil
		case last:
			res.deps = append(res.deps, dep{wd, name, roleFinal})
			if !wantDir {
				st := fi.Sys().(*syscall.Stat_t)
				res.final = finalState{exists: true, real: here, dev: uint64(st.Dev), ino: st.Ino}
			}
			return res, nil
		default:
			// A file where a directory should be: the path leads nowhere
			// until it is replaced.
			if wd, err = watch(cur); err != nil {
				return res, err
			}
			res.deps = append(res.deps, dep{wd, name, roleMissing})
			return res, nil
		}
	}
	// The path ended in "/" or "..": it names the directory cur.
	if wantDir {
		dwd, err := watch(cur)
		if err != nil {
			return res, err
		}
		res.dirWd, res.real = dwd, cur
	}
	return res, nil
}

func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

// components pushes the components of p onto todo so that the first is
// last, dropping empty ones and ".".
func components(todo []string, p string) []string {
	parts := strings.Split(p, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" && parts[i] != "." {
			todo = append(todo, parts[i])
		}
	}
	return todo
}
