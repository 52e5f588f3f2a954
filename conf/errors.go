package conf

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/supervise/supervise/conf/typo"
)

// ErrInvalid is matched (errors.Is) by every configuration problem: each
// *Error and every ErrorList.
var ErrInvalid = errors.New("invalid configuration")

// ErrEmpty is wrapped by the error Parse returns for a file that holds no
// settings at all: nothing but whitespace and comments.
var ErrEmpty = errors.New("empty configuration")

// ErrProgramExists is returned (wrapped) by AddCommand when the
// configuration already has a program named "main".
var ErrProgramExists = errors.New("program already exists")

// Error is one problem in a configuration file. Its text is
// "File:Line: Section: Msg", for example
//
//	supervise.toml:14: programs.web: unknown key "comand" (did you mean "command"?)
//
// where Section is "supervisor", "defaults", "programs.NAME" or
// "teardown.NAME" (empty for top-level keys and syntax errors). Line is 0
// when no line applies; File is empty for a configuration not read from a
// file.
type Error struct {
	File    string
	Line    int
	Program string // the section: "programs.web", "supervisor", "defaults", "teardown.x"
	Key     string // the offending key, dotted for subtables ("breaker.max_failures"); may be empty
	Msg     string

	err error // a sentinel the problem wraps, if any
}

// Error formats the problem as "file:line: section: message".
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Program != "" {
		b.WriteString(e.Program + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the sentinel the problem wraps (such as ErrProgramExists),
// or nil.
func (e *Error) Unwrap() error { return e.err }

// ErrorList holds every problem found in a file, ordered by line. Its text
// is one problem per line.
type ErrorList []*Error

// Error joins the problems, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the problems, so errors.As finds an *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Is reports whether target is ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// sortErrors orders problems by line, problems without a line last, keeping
// the order in which they were found otherwise.
func sortErrors(l ErrorList) {
	key := func(e *Error) int {
		if e.Line <= 0 {
			return int(^uint(0) >> 1)
		}
		return e.Line
	}
	sort.SliceStable(l, func(i, j int) bool { return key(l[i]) < key(l[j]) })
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to word,
// or "" when none is close enough.
func suggest(word string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := typo.Distance(strings.ToLower(word), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || (bestD > 2 && bestD > len(word)/3) || bestD >= len(word) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
