package conf

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// SourceKind says what a file of a configuration is to it.
type SourceKind uint8

// The kinds of source files.
const (
	SourceMain    SourceKind = iota + 1 // the file given to Load
	SourceInclude                       // a file an include pattern matched
	SourceEnv                           // an env file
)

// String returns "main", "include" or "env".
func (k SourceKind) String() string {
	switch k {
	case SourceMain:
		return "main"
	case SourceInclude:
		return "include"
	case SourceEnv:
		return "env"
	}
	return "SourceKind(" + strconv.Itoa(int(k)) + ")"
}

// Source is one file a configuration was read from, or looked for.
type Source struct {
	Path    string // absolute
	Kind    SourceKind
	Missing bool              // it does not exist (an env file with "-", or one whose absence made the load fail)
	Sum     [sha256.Size]byte // SHA-256 of the contents; zero when Missing
}

// Sources lists what a configuration is read from: what a watcher of the
// configuration follows, and what tells whether a re-read would find
// anything new.
type Sources struct {
	Main     string   // the main file, absolute
	Patterns []string // the include patterns, absolute, as written in order
	// Files holds every file read (or looked for), each once, in reading
	// order: the main file, the included files in lexical order, then the
	// env files.
	Files []Source
}

// add records a file read, once.
func (s *Sources) add(f Source) {
	if !slices.ContainsFunc(s.Files, func(g Source) bool { return g.Path == f.Path }) {
		s.Files = append(s.Files, f)
	}
}

// Digest is a hash of everything the sources say: the patterns, and each
// file's path, kind, presence and contents. Two loads with equal digests
// read the same bytes from the same files.
func (s *Sources) Digest() [sha256.Size]byte {
	h := sha256.New()
	str := func(x string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(x)))
		h.Write(n[:])
		h.Write([]byte(x))
	}
	str(s.Main)
	for _, p := range s.Patterns {
		str("pattern")
		str(p)
	}
	for _, f := range s.Files {
		str(f.Kind.String())
		str(f.Path)
		if f.Missing {
			str("missing")
		} else {
			h.Write(f.Sum[:])
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Watch returns what a watcher follows so that every edit that can change
// the configuration is seen: the main file and the env files (files), and
// the include patterns (patterns), through which the included files are
// followed, matches added and removed included.
func (s *Sources) Watch() (files, patterns []string) {
	files = []string{s.Main}
	for _, f := range s.Files {
		if f.Kind == SourceEnv {
			files = append(files, f.Path)
		}
	}
	return files, slices.Clone(s.Patterns)
}

// Load reads the file at path and parses it, with the files its include
// patterns match and the env files its programs name. A read error of the
// main file is returned wrapped (errors.Is(err, fs.ErrNotExist) works); a
// bad file, included file or env file gives an ErrorList.
func Load(path string) (*Config, error) {
	cfg, _, err := LoadSources(path)
	return cfg, err
}

// LoadSources is Load, also returning the sources it read. They are
// returned whether or not the load succeeded, as far as it went: after an
// error they tell which files an edit must touch to change the outcome.
//
// Included files are read in lexical order of their paths, every pattern
// together, each once; a pattern matching the main file skips it. Their
// relative paths are taken relative to their own directory, those of
// [defaults] relative to the main file's. Included files and env files
// must be regular files (symbolic links are followed) of at most
// maxFileSize bytes.
func LoadSources(path string) (*Config, *Sources, error) {
	src := &Sources{Main: absPath(path)}
	data, err := os.ReadFile(path)
	if err != nil {
		src.add(Source{Path: src.Main, Kind: SourceMain, Missing: true})
		return nil, src, fmt.Errorf("config: %w", err)
	}
	src.add(Source{Path: src.Main, Kind: SourceMain, Sum: sha256.Sum256(data)})
	cfg, err := compose(path, data, newLoader(src))
	if err != nil {
		return nil, src, err
	}
	cfg.Sources = src
	return cfg, src, nil
}

// maxFileSize bounds an included file or an env file.
const maxFileSize = 16 << 20

// loader reads the files a main file leads to.
type loader struct {
	src *Sources
	env map[string]*envRead // by absolute path: each env file is read once
	// envReported holds the env files whose problem is already reported.
	envReported map[string]bool
}

func newLoader(src *Sources) *loader {
	return &loader{src: src, env: map[string]*envRead{}, envReported: map[string]bool{}}
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// includes reads and checks the files the include patterns match.
func (ld *loader) includes(b *builder) []*fileTables {
	cfg := b.cfg
	includeLine := cfg.lines[cfg.File].line("supervisor", "include")
	mainInfo, _ := os.Stat(cfg.File)
	type match struct{ abs, shown string }
	var found []match
	seen := map[string]bool{}
	for _, pat := range cfg.Supervisor.Include {
		shown := pat
		if !filepath.IsAbs(pat) {
			shown = filepath.Join(filepath.Dir(cfg.File), pat)
		}
		abs := resolvePath(cfg.File, pat)
		ld.src.Patterns = append(ld.src.Patterns, abs)
		names, err := globDir(abs)
		if err != nil {
			b.d.add(&Error{File: cfg.File, Line: includeLine, Program: "supervisor", Key: "include",
				Msg: fmt.Sprintf("key %q: pattern %q: %v", "include", pat, describeReadError(err))})
			continue
		}
		for _, name := range names {
			a := filepath.Join(filepath.Dir(abs), name)
			if seen[a] || a == ld.src.Main {
				continue
			}
			seen[a] = true
			found = append(found, match{a, filepath.Join(filepath.Dir(shown), name)})
		}
	}
	slices.SortFunc(found, func(x, y match) int {
		switch {
		case x.abs < y.abs:
			return -1
		case x.abs > y.abs:
			return 1
		}
		return 0
	})
	var out []*fileTables
	for _, m := range found {
		if fi, err := os.Stat(m.abs); err == nil && mainInfo != nil && os.SameFile(fi, mainInfo) {
			continue // a link to the main file
		}
		b.files = append(b.files, m.shown)
		data, err := readRegular(m.abs)
		if err != nil {
			ld.src.add(Source{Path: m.abs, Kind: SourceInclude, Missing: true})
			b.d.add(&Error{File: m.shown, Msg: "cannot read the included file: " + describeReadError(err)})
			continue
		}
		ld.src.add(Source{Path: m.abs, Kind: SourceInclude, Sum: sha256.Sum256(data)})
		u, serr := decodeTOML(m.shown, data)
		if serr != nil {
			b.d.add(serr)
			continue
		}
		cfg.lines[m.shown] = u.lines
		out = append(out, b.includedFile(u))
	}
	return out
}

// readRegular reads a regular file (following symbolic links) of at most
// maxFileSize bytes. It opens without blocking, so a FIFO put in its
// place is refused rather than waited on.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d MiB", maxFileSize>>20)}
	}
	return data, nil
}

// describeReadError words a read error without the operation's name.
func describeReadError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}
