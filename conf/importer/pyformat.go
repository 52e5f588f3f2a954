package importer

import (
	"fmt"
	"strconv"
	"strings"
)

// supervisord expands its values with Python's % operator against a
// dictionary: "%(program_name)s", "%(process_num)02d", "%(ENV_HOME)s",
// "%%". pyFormat parses such a value into pieces: literal text, with every
// value known when importing already formatted in, and the references
// whose value is only known when a program starts (the instance's index,
// a variable of the supervisor's environment, the host name), which each
// target setting renders in its own way.

// refKind is what a dynamic piece refers to.
type refKind int

const (
	refNone    refKind = iota // literal text
	refReplica                // %(process_num)d of a program with numprocs > 1
	refEnv                    // %(ENV_X)s of the supervisor's environment
	refHost                   // %(host_node_name)s
)

// piece is literal text or one reference.
type piece struct {
	kind refKind
	text string  // the literal (kind refNone)
	name string  // the variable (refEnv)
	spec pySpec  // the conversion of a reference
	src  string  // the reference as written, for notes
	off  int     // refReplica: numprocs_start, added to the index
	val  *string // refEnv: the value when importing, if set
}

// pySpec is one conversion: flags, width, precision and type.
type pySpec struct {
	flags     string
	width     int
	precision int // -1 when absent
	typ       byte
}

// printf is the spec as a printf(1) format of an integer.
func (s pySpec) printf() string {
	f := "%" + s.flags
	if s.width > 0 {
		f += strconv.Itoa(s.width)
	}
	if s.precision >= 0 {
		f += "." + strconv.Itoa(s.precision)
	}
	return f + "d"
}

// expansion is the dictionary of one value.
type expansion struct {
	static  map[string]any // string or int values known when importing
	replica *replicaRef    // process_num, when it varies by instance
	env     func(name string) (string, bool)
	host    bool // host_node_name is available
}

// replicaRef says how process_num relates to {replica}.
type replicaRef struct{ start, count int }

// pyFormat expands s.
func pyFormat(s string, x *expansion) ([]piece, error) {
	var out []piece
	var lit strings.Builder
	flushLit := func() {
		if lit.Len() > 0 {
			out = append(out, piece{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		start := i
		i++
		if i >= len(s) {
			return nil, fmt.Errorf("%q: incomplete format (a lone %%: write %%%% for a percent sign)", s)
		}
		if s[i] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		if s[i] != '(' {
			return nil, fmt.Errorf("%q: %%%c is not a %%(name)s expansion (write %%%% for a percent sign)", s, s[i])
		}
		// The key runs to the matching parenthesis.
		depth, j := 1, i+1
		for ; j < len(s) && depth > 0; j++ {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		if depth > 0 {
			return nil, fmt.Errorf("%q: incomplete format key", s)
		}
		key := s[i+1 : j-1]
		i = j
		spec := pySpec{precision: -1}
		for i < len(s) && strings.IndexByte("#0- +", s[i]) >= 0 {
			if strings.IndexByte(spec.flags, s[i]) < 0 {
				spec.flags += string(s[i])
			}
			i++
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			spec.width = spec.width*10 + int(s[i]-'0')
			if spec.width > 1000 {
				return nil, fmt.Errorf("%q: field width too large", s)
			}
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			spec.precision = 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				spec.precision = spec.precision*10 + int(s[i]-'0')
				if spec.precision > 1000 {
					return nil, fmt.Errorf("%q: precision too large", s)
				}
				i++
			}
		}
		if i < len(s) && strings.IndexByte("hlL", s[i]) >= 0 {
			i++
		}
		if i >= len(s) {
			return nil, fmt.Errorf("%q: incomplete format", s)
		}
		spec.typ = s[i]
		i++
		src := s[start:i]
		if strings.IndexByte("diusr", spec.typ) < 0 {
			return nil, fmt.Errorf("%q: %s: only the conversions s and d are converted", s, src)
		}
		p, err := x.lookup(key, spec, src)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		if p.kind == refNone {
			lit.WriteString(p.text)
			continue
		}
		flushLit()
		out = append(out, p)
	}
	flushLit()
	return out, nil
}

// lookup resolves one %(key)X.
func (x *expansion) lookup(key string, spec pySpec, src string) (piece, error) {
	numeric := strings.IndexByte("diu", spec.typ) >= 0
	if key == "process_num" && x.replica != nil {
		return piece{kind: refReplica, spec: spec, src: src, off: x.replica.start}, nil
	}
	if key == "host_node_name" && x.host {
		if numeric {
			return piece{}, fmt.Errorf("%s: a number is required, not the host name", src)
		}
		return piece{kind: refHost, spec: spec, src: src}, nil
	}
	if v, ok := x.static[key]; ok {
		text, err := pyConvert(v, spec, src)
		return piece{text: text}, err
	}
	if name, ok := strings.CutPrefix(key, "ENV_"); ok && x.env != nil {
		if numeric {
			return piece{}, fmt.Errorf("%s: a number is required, not an environment variable", src)
		}
		p := piece{kind: refEnv, name: name, spec: spec, src: src}
		if v, ok := x.env(name); ok {
			p.val = &v
		}
		return p, nil
	}
	return piece{}, fmt.Errorf("%s: supervisord has no value named %q here", src, key)
}

// pyConvert formats v (a string or an int) as Python's % does.
func pyConvert(v any, spec pySpec, src string) (string, error) {
	var s string
	switch x := v.(type) {
	case int:
		switch spec.typ {
		case 'r', 's':
			s = strconv.Itoa(x)
			if spec.precision >= 0 && spec.precision < len(s) {
				s = s[:spec.precision]
			}
			return pad(s, spec, false), nil
		}
		digits := strconv.Itoa(abs(x))
		if spec.precision > len(digits) {
			digits = strings.Repeat("0", spec.precision-len(digits)) + digits
		}
		sign := ""
		switch {
		case x < 0:
			sign = "-"
		case strings.Contains(spec.flags, "+"):
			sign = "+"
		case strings.Contains(spec.flags, " "):
			sign = " "
		}
		if strings.Contains(spec.flags, "0") && !strings.Contains(spec.flags, "-") && spec.width > len(sign)+len(digits) {
			digits = strings.Repeat("0", spec.width-len(sign)-len(digits)) + digits
		}
		return pad(sign+digits, spec, false), nil
	case string:
		switch spec.typ {
		case 'd', 'i', 'u':
			return "", fmt.Errorf("%s: a number is required, not a string", src)
		case 'r':
			x = pyRepr(x)
		}
		if spec.precision >= 0 {
			if r := []rune(x); spec.precision < len(r) {
				x = string(r[:spec.precision])
			}
		}
		return pad(x, spec, true), nil
	}
	return "", fmt.Errorf("%s: cannot be formatted", src)
}

// pad pads s to the spec's width with blanks, on the left unless the '-'
// flag is given.
func pad(s string, spec pySpec, runes bool) string {
	n := len(s)
	if runes {
		n = len([]rune(s))
	}
	if spec.width <= n {
		return s
	}
	fill := strings.Repeat(" ", spec.width-n)
	if strings.Contains(spec.flags, "-") {
		return s + fill
	}
	return fill + s
}

// pyRepr is Python's repr of a plain string (single quotes unless it holds
// one and no double quote).
func pyRepr(s string) string {
	q := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteString(`\` + string(q))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
