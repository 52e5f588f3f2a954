package control

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Commands of program logs (SPEC §14).
const (
	// CmdLogs streams the kept output lines of programs (a Stream
	// command): replies carry a LogChunk each.
	CmdLogs = "logs"
	// CmdReopenLogs reopens the log files the supervisor writes.
	CmdReopenLogs = "reopen-logs"
)

// Parameters of CmdLogs.
const (
	// ParamLines limits the answer to the last N kept lines (of all the
	// programs named, merged), before following.
	ParamLines = "lines"
	// ParamFollow ("true") keeps the stream open for new lines.
	ParamFollow = "follow"
	// ParamSince keeps only lines at or after a time: see ParseSince.
	ParamSince = "since"
)

// LogLine is one line of a program's output as `supervise logs` gets it,
// or a marker of lines lost. Its JSON form is the one of `supervise logs
// --json` and of `log_format = "json"`: ts, program, stream, line, and
// partial for the leading pieces of a line cut at 64 KiB.
type LogLine struct {
	TS      time.Time `json:"ts"`
	Program string    `json:"program"`
	// Stream is "stdout" or "stderr"; "" on a marker.
	Stream string `json:"stream,omitempty"`
	Line   string `json:"line"`
	// Partial marks a piece of a line too long to be kept whole: the
	// next line of the program continues it.
	Partial bool `json:"partial,omitempty"`
	// Skipped, on a marker, counts the lines of the program this reader
	// lost: they were evicted from the buffer before it could read them.
	Skipped uint64 `json:"skipped,omitempty"`
	// Dropped, on a marker, counts lines log_rate dropped.
	Dropped uint64 `json:"dropped,omitempty"`
}

// LogChunk is the body of one reply of CmdLogs.
type LogChunk struct {
	// Width is the length of the longest program name of the answer, to
	// which the console format pads names.
	Width int       `json:"width"`
	Lines []LogLine `json:"lines"`
	// Notes, on the first reply, say what the answer cannot show, such
	// as a program whose output goes to a file.
	Notes []string `json:"notes,omitempty"`
}

// SkippedLine returns the marker of n lines of program lost at ts.
func SkippedLine(ts time.Time, program string, n uint64) LogLine {
	return LogLine{TS: ts, Program: program, Skipped: n, Line: Plural(n, "line") + " skipped (this reader fell behind)"}
}

// DroppedLine returns the marker of n lines of program dropped above
// log_rate, as of ts.
func DroppedLine(ts time.Time, program string, n uint64) LogLine {
	return LogLine{TS: ts, Program: program, Dropped: n, Line: Plural(n, "line") + " dropped above log_rate"}
}

// Plural writes "1 line", "2 lines".
func Plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

// ParseSince reads the --since of `supervise logs`: a duration before now
// in Go syntax ("10m", "1h30m") or a number of seconds ("90", "0.5"), or
// an RFC 3339 time ("2024-05-01T10:00:00Z").
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e9 && !strings.ContainsAny(s, "xXpP_") {
		return now.Add(-time.Duration(f * float64(time.Second))), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q (want a duration like \"10m\", a number of seconds, or an RFC 3339 time)", s)
}

// ConsoleTimeLayout is the time format of the console log format, for the
// supervisor's own entries and the programs' lines alike.
const ConsoleTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// The characters between a program's name and its line in the console
// format: `web | ...` for stdout, `web ! ...` for stderr, `web ~ ...` for
// a marker of lines lost.
const (
	SepStdout byte = '|'
	SepStderr byte = '!'
	SepMarker byte = '~'
)

// Separator returns the separator of a line of stream ("stdout" or
// "stderr"; anything else is a marker).
func Separator(stream string) byte {
	switch stream {
	case "stdout":
		return SepStdout
	case "stderr":
		return SepStderr
	}
	return SepMarker
}

// Colours of the console format (ANSI SGR): programs get one of palette by
// a hash of their name, so a program keeps its colour across restarts,
// reloads and `supervise logs`; red is kept for stderr's separator.
var palette = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m",
	"\x1b[96m", "\x1b[93m", "\x1b[92m", "\x1b[95m", "\x1b[94m"}

const (
	colorReset = "\x1b[0m"
	colorRed   = "\x1b[31m"
	colorDim   = "\x1b[2m"
)

// NameColor returns the colour of program name in the console format.
func NameColor(name string) string {
	h := fnv.New32a()
	io.WriteString(h, name)
	return palette[h.Sum32()%uint32(len(palette))]
}

// spaces pads names; a name longer than it is not padded further.
const spaces = "                                                                "

// AppendConsole appends one line in the console format, `TIME NAME | line`
// and a newline: stamp (the time, formatted with ConsoleTimeLayout), the
// name padded to width, the separator (SepStdout, SepStderr, SepMarker)
// and the line. With a color (NameColor(name), "" for none), the name is
// in it, and the separators of stderr and markers in red and dim.
func AppendConsole(b, stamp []byte, name string, width int, sep byte, color string, line []byte) []byte {
	b = append(b, stamp...)
	b = append(b, ' ')
	if color != "" {
		b = append(b, color...)
		b = append(b, name...)
		b = append(b, colorReset...)
	} else {
		b = append(b, name...)
	}
	if pad := width - len(name); pad > 0 {
		b = append(b, spaces[:min(pad, len(spaces))]...)
	}
	b = append(b, ' ')
	switch {
	case color != "" && sep == SepStderr:
		b = append(b, colorRed+"!"+colorReset...)
	case color != "" && sep == SepMarker:
		b = append(b, colorDim+"~"+colorReset...)
	default:
		b = append(b, sep)
	}
	b = append(b, ' ')
	b = append(b, line...)
	return append(b, '\n')
}

// UseColor reports whether console output to w is coloured: w is a
// terminal, NO_COLOR is unset or empty (https://no-color.org), and TERM is
// not "dumb".
func UseColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// AppendConsole appends l in the console format (see the function
// AppendConsole), with its time in the local zone.
func (l LogLine) AppendConsole(b []byte, width int, color bool) []byte {
	var stamp [40]byte
	c := ""
	if color {
		c = NameColor(l.Program)
	}
	return AppendConsole(b, l.TS.Local().AppendFormat(stamp[:0], ConsoleTimeLayout), l.Program, width, Separator(l.Stream), c, []byte(l.Line))
}

// writeOutputLosses follows the status table with a line for each
// program that lost output: "web: output lost: 12 lines above log_rate,
// 4096 bytes not written to its log file (write log file: no space left
// on device)".
func writeOutputLosses(w io.Writer, ps []ProgramStatus) error {
	var b strings.Builder
	for _, p := range ps {
		o := p.Output
		if o == nil || (o.DroppedLines == 0 && o.DroppedBytes == 0 && o.FileError == "") {
			continue
		}
		var parts []string
		if o.DroppedLines > 0 {
			parts = append(parts, Plural(o.DroppedLines, "line")+" above log_rate")
		}
		if o.DroppedBytes > 0 {
			parts = append(parts, Plural(o.DroppedBytes, "byte")+" not written to its log file")
		}
		line := p.Name + ": output lost: " + strings.Join(parts, ", ")
		if len(parts) == 0 {
			line = p.Name + ": log file"
		}
		if o.FileError != "" {
			line += " (" + o.FileError + ")"
		}
		b.WriteString(line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printLogs prints the lines of a reply of `supervise logs`: in the
// console format, or with --json one object per line. Notes go to
// standard error.
func printLogs(w io.Writer, inv *Invocation, r Response) error {
	if r.Logs == nil {
		return PrintResponse(w, inv, r)
	}
	for _, n := range r.Logs.Notes {
		fmt.Fprintf(os.Stderr, "supervise: %s\n", n)
	}
	var b []byte
	if inv.Bool("json") {
		for _, l := range r.Logs.Lines {
			j, err := json.Marshal(l)
			if err != nil {
				return fmt.Errorf("writing a line: %w", err)
			}
			b = append(append(b, j...), '\n')
		}
	} else {
		color := UseColor(w)
		for _, l := range r.Logs.Lines {
			b = l.AppendConsole(b, max(r.Logs.Width, len(l.Program)), color)
		}
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing the lines: %w", err)
	}
	return nil
}
