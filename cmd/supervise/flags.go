package main

import (
	"fmt"
	"strings"
)

// flagSet is a small parser that, unlike package flag, accepts flags
// between positional arguments (`status web --json`), both `-c FILE` and
// `--config=FILE` spellings, and stops at `--`.
type flagSet struct {
	values map[string]*string // flag name -> destination (value flags)
	bools  map[string]*bool
	alias  map[string]string
}

func newFlagSet() *flagSet {
	return &flagSet{values: map[string]*string{}, bools: map[string]*bool{}, alias: map[string]string{}}
}

func (f *flagSet) str(dst *string, names ...string) {
	for _, n := range names {
		f.values[n] = dst
	}
}

func (f *flagSet) boolean(dst *bool, names ...string) {
	for _, n := range names {
		f.bools[n] = dst
	}
}

// parse returns the positional arguments and, after `--`, the command.
func (f *flagSet) parse(args []string) (pos, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return pos, args[i+1:], nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		if b, ok := f.bools[name]; ok {
			if hasVal {
				switch val {
				case "true", "1":
					*b = true
				case "false", "0":
					*b = false
				default:
					return nil, nil, usageError{fmt.Sprintf("flag %s takes true or false, not %q", a, val)}
				}
			} else {
				*b = true
			}
			continue
		}
		dst, ok := f.values[name]
		if !ok {
			return nil, nil, usageError{fmt.Sprintf("unknown flag %s", a)}
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, usageError{fmt.Sprintf("flag %s needs a value", a)}
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return pos, nil, nil
}
