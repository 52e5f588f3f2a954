package importer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Rendering pieces (see pyFormat) into supervise settings: as a value with
// {replica} templates where that is exact, else as /bin/sh words that
// compute the value when the program starts.

// replicaTemplate renders a %(process_num)X reference as {replica} with
// the padding it implies, when one fixed text around {replica} gives what
// supervisord gives for every index of the imported count: with up to 10
// processes, %(process_num)02d is "0{replica}". pad is that fixed text.
// A count scaled beyond the imported one is padded the same way.
func replicaTemplate(p piece, count int) (tmpl string, exact bool, pad string) {
	if p.off != 0 {
		return "{replica}", false, ""
	}
	f0, err := pyConvert(0, p.spec, p.src)
	if err != nil {
		return "{replica}", false, ""
	}
	fits := func(prefix, suffix string) bool {
		for i := 1; i < count; i++ {
			if s, _ := pyConvert(i, p.spec, p.src); s != prefix+strconv.Itoa(i)+suffix {
				return false
			}
		}
		return true
	}
	for k := 0; k < len(f0); k++ {
		if f0[k] == '0' && fits(f0[:k], f0[k+1:]) {
			return f0[:k] + "{replica}" + f0[k+1:], true, f0[:k] + f0[k+1:]
		}
	}
	return "{replica}", false, ""
}

// replicaShell is /bin/sh text computing a %(process_num)X reference from
// $SUPERVISE_REPLICA when the program starts: exact for every count.
func replicaShell(p piece) string {
	idx := `$SUPERVISE_REPLICA`
	if p.off != 0 {
		idx = fmt.Sprintf(`$((SUPERVISE_REPLICA + %d))`, p.off)
	}
	if p.spec.typ == 's' || p.spec.typ == 'r' || p.spec.flags != "" || p.spec.width > 0 || p.spec.precision >= 0 {
		f := p.spec.printf()
		if p.spec.typ == 's' || p.spec.typ == 'r' {
			// %5s of a number pads with blanks like %5d.
			f = "%" + strings.ReplaceAll(p.spec.flags, "0", "")
			if p.spec.width > 0 {
				f += strconv.Itoa(p.spec.width)
			}
			f += "d"
		}
		return fmt.Sprintf(`$(printf '%s' "%s")`, f, idx)
	}
	if p.off != 0 {
		return idx
	}
	return "${SUPERVISE_REPLICA}"
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s as one /bin/sh word.
func shellQuote(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellWord writes pieces as one /bin/sh word: literal text quoted,
// references as double-quoted expansions (so a value is one word).
func shellWord(ps []piece, count int) string {
	var b strings.Builder
	for _, p := range ps {
		switch p.kind {
		case refNone:
			b.WriteString(shellQuote(p.text))
		case refEnv:
			b.WriteString(`"${` + p.name + `}"`)
		case refHost:
			b.WriteString(`"$(uname -n)"`)
		case refReplica:
			if t, exact, _ := replicaTemplate(p, count); exact {
				b.WriteString(t)
			} else {
				b.WriteString(`"` + replicaShell(p) + `"`)
			}
		}
	}
	if b.Len() == 0 {
		return "''"
	}
	return b.String()
}

// sentinel marks reference i in text handed to a tokenizer: letters and
// digits only, so that both of supervisord's tokenizers keep it inside a
// word.
func sentinel(i int) string { return fmt.Sprintf("QsvimpQ%dQ", i) }

var sentinelRE = regexp.MustCompile(`QsvimpQ([0-9]+)Q`)

// withSentinels writes pieces as text, each reference as its sentinel.
func withSentinels(ps []piece) (string, []piece) {
	var b strings.Builder
	var refs []piece
	for _, p := range ps {
		if p.kind == refNone {
			b.WriteString(p.text)
			continue
		}
		b.WriteString(sentinel(len(refs)))
		refs = append(refs, p)
	}
	return b.String(), refs
}

// fromSentinels turns text holding sentinels back into pieces.
func fromSentinels(s string, refs []piece) []piece {
	var out []piece
	last := 0
	for _, m := range sentinelRE.FindAllStringSubmatchIndex(s, -1) {
		i, _ := strconv.Atoi(s[m[2]:m[3]])
		if i >= len(refs) {
			continue
		}
		if m[0] > last {
			out = append(out, piece{text: s[last:m[0]]})
		}
		out = append(out, refs[i])
		last = m[1]
	}
	if last < len(s) {
		out = append(out, piece{text: s[last:]})
	}
	return out
}
