package importer

import (
	"errors"
	"strings"
)

// Python's shlex, in the two configurations supervisord uses: shlex.split
// for a program's command (POSIX rules, split on blanks only, no
// comments), and the tokenizer of its environment parser
// (dict_of_key_value_pairs: POSIX rules, words of letters, digits and
// "_/.+-():", every other character a token of its own, '#' starting a
// comment). Both are ports of CPython's shlex.read_token, so that a
// command or an environment means here what it means to supervisord.

var (
	errNoClosingQuote = errors.New("no closing quotation")
	errNoEscaped      = errors.New("no escaped character")
)

// lexer is one shlex.shlex in POSIX mode.
type lexer struct {
	in         []rune
	pos        int
	split      bool // whitespace_split
	commenters string
	wordchars  func(rune) bool
	pushback   []rune
}

const (
	shWhitespace = " \t\r\n"
	shQuotes     = `'"`
)

// posixWordchars are shlex's word characters in POSIX mode.
const posixWordchars = "abcdfeghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" +
	"ßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ"

func (l *lexer) read() (rune, bool) {
	if n := len(l.pushback); n > 0 {
		r := l.pushback[n-1]
		l.pushback = l.pushback[:n-1]
		return r, true
	}
	if l.pos >= len(l.in) {
		return 0, false
	}
	r := l.in[l.pos]
	l.pos++
	return r, true
}

// skipLine consumes the rest of the line, newline included (readline).
func (l *lexer) skipLine() {
	for {
		r, ok := l.read()
		if !ok || r == '\n' {
			return
		}
	}
}

// token returns the next token; ok is false at the end of the input.
func (l *lexer) token() (tok string, ok bool, err error) {
	var b strings.Builder
	quoted := false
	state := ' '
	escapedState := ' '
	for {
		c, more := l.read()
		switch {
		case state == ' ':
			switch {
			case !more:
				return l.result(&b, quoted)
			case strings.ContainsRune(shWhitespace, c):
				if b.Len() > 0 || quoted {
					return b.String(), true, nil
				}
			case strings.ContainsRune(l.commenters, c):
				l.skipLine()
			case c == '\\':
				escapedState, state = 'a', '\\'
			case l.wordchars != nil && l.wordchars(c):
				b.WriteRune(c)
				state = 'a'
			case strings.ContainsRune(shQuotes, c):
				state = c
			case l.split:
				b.WriteRune(c)
				state = 'a'
			default:
				b.WriteRune(c)
				return b.String(), true, nil
			}
		case state == '\'' || state == '"':
			quoted = true
			switch {
			case !more:
				return "", false, errNoClosingQuote
			case c == state:
				state = 'a'
			case c == '\\' && state == '"':
				escapedState, state = state, '\\'
			default:
				b.WriteRune(c)
			}
		case state == '\\':
			if !more {
				return "", false, errNoEscaped
			}
			// In double quotes a backslash escapes only '"' and itself.
			if escapedState == '"' && c != '\\' && c != '"' {
				b.WriteRune('\\')
			}
			b.WriteRune(c)
			state = escapedState
		default: // 'a': in a word
			switch {
			case !more:
				return l.result(&b, quoted)
			case strings.ContainsRune(shWhitespace, c):
				return b.String(), true, nil
			case strings.ContainsRune(l.commenters, c):
				l.skipLine()
				if b.Len() > 0 || quoted {
					return b.String(), true, nil
				}
				state = ' '
			case strings.ContainsRune(shQuotes, c):
				state = c
			case c == '\\':
				escapedState, state = 'a', '\\'
			case l.split || (l.wordchars != nil && l.wordchars(c)):
				b.WriteRune(c)
			default:
				l.pushback = append(l.pushback, c)
				return b.String(), true, nil
			}
		}
	}
}

// result ends the input: the last token, if any.
func (l *lexer) result(b *strings.Builder, quoted bool) (string, bool, error) {
	l.pos = len(l.in)
	if b.Len() == 0 && !quoted {
		return "", false, nil
	}
	return b.String(), true, nil
}

// tokens returns every token.
func (l *lexer) tokens() ([]string, error) {
	var out []string
	for {
		t, ok, err := l.token()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, t)
	}
}

// shlexSplit is Python's shlex.split(s): the argv supervisord makes of a
// command.
func shlexSplit(s string) ([]string, error) {
	l := &lexer{in: []rune(s), split: true}
	return l.tokens()
}

// envWordchar is a word character of supervisord's environment tokenizer.
func envWordchar(r rune) bool {
	return strings.ContainsRune(posixWordchars, r) || strings.ContainsRune("/.+-():", r)
}

// keyValuePairs is supervisord's dict_of_key_value_pairs: "KEY=val,K2=v2"
// (quotes allow other characters in a value). It returns the pairs in
// their order, a later one replacing an earlier one of the same key.
func keyValuePairs(s string) (keys []string, values map[string]string, err error) {
	l := &lexer{in: []rune(s), commenters: "#", wordchars: envWordchar}
	toks, err := l.tokens()
	if err != nil {
		return nil, nil, err
	}
	values = map[string]string{}
	for i := 0; i < len(toks); i += 4 {
		if i+3 > len(toks) || toks[i+1] != "=" {
			return nil, nil, errors.New("not a list of KEY=value pairs separated by commas (quote values that hold other characters than letters, digits and _/.+-():)")
		}
		k, v := toks[i], toks[i+2]
		if _, dup := values[k]; !dup {
			keys = append(keys, k)
		}
		values[k] = v
	}
	return keys, values, nil
}
