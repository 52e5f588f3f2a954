package main

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/supervise/supervise/control"
)

// lineWriter writes the output lines of programs to the supervisor's log
// (SPEC §14), in the console format `TIME NAME | line` (stderr lines with
// "!" for "|"; names padded to the longest name of the configuration and,
// on a terminal without NO_COLOR, coloured per program), or in JSON, one
// object per line with ts, program, stream, line (and partial). It is the
// hot path of program output: it reads the clock once per read round,
// formats the console time once per millisecond, escapes only when a line
// needs it, and gathers a round's lines into one write.
//
// WriteLine and Batch are called by the one goroutine that reads every
// Lines output (procs promises it), so they take no lock; SetNameWidth may
// be called from anywhere.
type lineWriter struct {
	w     zapcore.WriteSyncer
	json  bool
	color bool
	level zap.AtomicLevel
	width atomic.Int64 // the name width, set by the event loop

	out     []byte            // the lines of the open batch, not written yet
	batch   int               // open batches (read rounds of program output)
	now     time.Time         // the time of the lines of the open batch
	stampMs int64             // the millisecond stamp was formatted for
	stamp   []byte            // the console time
	secUnix int64             // the second jsonSec and jsonTZ were formatted for
	jsonSec []byte            // "2006-01-02T15:04:05"
	jsonTZ  []byte            // "Z" or "+07:00"
	colors  map[string]string // NameColor by program, when color
}

// lineFlushAt is the most a batch gathers before it is written.
const lineFlushAt = 256 << 10

// newLineWriter returns the writer of format ("console" or "json") to w;
// color colours the console format.
func newLineWriter(w zapcore.WriteSyncer, format string, level zap.AtomicLevel, color bool) *lineWriter {
	return &lineWriter{w: w, json: format == "json", color: color && format != "json", level: level}
}

// SetNameWidth sets the width names are padded to in the console format.
func (l *lineWriter) SetNameWidth(n int) { l.width.Store(int64(n)) }

// Batch opens (begin) or closes a read round of program output. The lines
// of a round share one timestamp, taken when it opens, and are written
// together when it closes: before the reader reports an exit, so a
// program's last lines still come before the entry of its end.
func (l *lineWriter) Batch(begin bool) {
	switch {
	case begin:
		if l.batch == 0 {
			l.now = time.Now()
		}
		l.batch++
	case l.batch > 0:
		if l.batch--; l.batch == 0 {
			l.flush()
		}
	}
}

func (l *lineWriter) flush() {
	if len(l.out) == 0 {
		return
	}
	l.w.Write(l.out)
	if cap(l.out) > 4*lineFlushAt {
		l.out = nil // after a burst of huge lines, do not keep the buffer
	} else {
		l.out = l.out[:0]
	}
}

// WriteLine writes one output line of program's stream (nothing below the
// info level) and returns the time it stamped it with.
func (l *lineWriter) WriteLine(program, stream string, line []byte, partial bool) time.Time {
	// Lines read in one round arrived together: one clock read serves them
	// all (the clock read was the biggest cost per line).
	now := l.now
	if l.batch == 0 {
		now = time.Now()
	}
	if !l.level.Enabled(zapcore.InfoLevel) {
		return now
	}
	b := l.out
	if l.json {
		b = append(b, `{"ts":"`...)
		b = l.appendRFC3339Nano(b, now)
		b = append(b, `","program":"`...)
		b = appendJSONString(b, []byte(program))
		b = append(b, `","stream":"`...)
		b = append(b, stream...)
		b = append(b, `","line":"`...)
		b = appendJSONString(b, line)
		b = append(b, '"')
		if partial {
			b = append(b, `,"partial":true`...)
		}
		b = append(b, "}\n"...)
	} else {
		if ms := now.UnixMilli(); ms != l.stampMs || l.stamp == nil {
			l.stampMs = ms
			l.stamp = now.AppendFormat(l.stamp[:0], control.ConsoleTimeLayout)
		}
		color := ""
		if l.color {
			if color = l.colors[program]; color == "" {
				if l.colors == nil {
					l.colors = map[string]string{}
				}
				color = control.NameColor(program)
				l.colors[program] = color
			}
		}
		sep := control.SepStdout
		if stream == "stderr" {
			sep = control.SepStderr
		}
		b = control.AppendConsole(b, l.stamp, program, int(l.width.Load()), sep, color, line)
	}
	l.out = b
	if l.batch == 0 || len(b) >= lineFlushAt {
		l.flush()
	}
	return now
}

// appendJSONString appends s escaped for a JSON string (without quotes),
// copying runs that need no escape in one go.
func appendJSONString(b, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look.
		for i+8 <= len(s) && !jsonSpecial(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, `\u00`...)
				b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			} else {
				b = append(b, `\ufffd`...) // invalid UTF-8, as zap writes it
			}
		}
		i++
		start = i
	}
	return append(b, s[start:]...)
}

// jsonSpecial reports whether any byte of w is a control character, '"',
// '\\' or not ASCII (the bytes appendJSONString must look at).
func jsonSpecial(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(x uint64) uint64 { return (x - ones) &^ x & highs } // bytes of x that are 0
	return (w-0x20*ones)&^w&highs|zero(w^0x22*ones)|zero(w^0x5c*ones)|w&highs != 0
}

// appendRFC3339Nano appends t as time.RFC3339Nano does (trailing zeros of
// the fraction trimmed), formatting the date and zone once per second.
func (l *lineWriter) appendRFC3339Nano(b []byte, t time.Time) []byte {
	if sec := t.Unix(); sec != l.secUnix || l.jsonSec == nil {
		l.secUnix = sec
		l.jsonSec = t.AppendFormat(l.jsonSec[:0], "2006-01-02T15:04:05")
		l.jsonTZ = t.AppendFormat(l.jsonTZ[:0], "Z07:00")
	}
	b = append(b, l.jsonSec...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, l.jsonTZ...)
}

// jsonSafe marks the bytes copied into a JSON string as they are.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
