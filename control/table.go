package control

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteTable prints programs as the table of `supervise status`
// (SPEC section 6), one row per program in the order given:
//
//	NAME      STATE      PID    UPTIME  RESTARTS  BREAKER      HEARTBEAT  LAST EXIT
//	db        running    4123   2h03m   0         closed       2s ago     -
//	worker    backoff    -      -       3         closed 3/5   -          exit 1
//	web       2 running, 1 backoff
//	  web:0   running    4124   1m02s   0         closed       -          -
//	  web:1   running    4125   1m02s   0         closed       -          -
//	  web:2   backoff    -      -       1         closed 1/5   -          exit 1
//
// The instances of a program with replicas are grouped under a line that
// names the program and counts the rows shown by state, where its first
// instance appears. PID and UPTIME are "-" without a process; BREAKER is
// "closed", "closed N/M" once failures are counted, "open D" with the
// time left until it half-opens, or "half_open"; HEARTBEAT is the age of
// the last beat ("2s ago") or "-"; LAST EXIT is "-", "exit N", "signal
// NAME" or "spawn error". Durations are written by FormatDuration.
//
// When a program has probes, a PROBES column follows LAST EXIT: "ready"
// and "live" with each probe's state ("ok", "fail N" with the count of
// consecutive failures, "?" unknown), such as "ready ok, live fail 2".
func WriteTable(w io.Writer, ps []ProgramStatus) error {
	// A line is the cells of a row, or a group's name and summary, whose
	// summary (like every line's last cell) is left out of the widths.
	type line struct {
		cells   []string
		summary bool
	}
	probes := slices.ContainsFunc(ps, func(p ProgramStatus) bool { return p.Probes != nil })
	header := []string{"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "BREAKER", "HEARTBEAT", "LAST EXIT"}
	if probes {
		header = append(header, "PROBES")
	}
	lines := []line{{cells: header}}
	row := func(name string, p ProgramStatus) {
		pid, uptime := "-", "-"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
			uptime = FormatDuration(seconds(p.UptimeSeconds))
		}
		heartbeat := "-"
		if p.Heartbeat.AgeSeconds != nil {
			heartbeat = FormatDuration(seconds(*p.Heartbeat.AgeSeconds)) + " ago"
		}
		cells := []string{name, cell(p.State), pid, uptime, strconv.Itoa(p.Restarts),
			breakerCell(p.Breaker), heartbeat, lastExitCell(p.LastExit)}
		if probes {
			cells = append(cells, probesCell(p.Probes))
		}
		lines = append(lines, line{cells: cells})
	}
	groups := map[string][]ProgramStatus{}
	for _, p := range ps {
		if g := group(p); g != "" {
			groups[g] = append(groups[g], p)
		}
	}
	for _, p := range ps {
		g := group(p)
		if g == "" {
			row(cell(p.Name), p)
			continue
		}
		insts, ok := groups[g]
		if !ok {
			continue // printed with its group
		}
		delete(groups, g)
		lines = append(lines, line{cells: []string{g, stateCounts(insts)}, summary: true})
		for _, q := range insts {
			row("  "+q.Name, q)
		}
	}
	const gap = 3
	var widths []int
	for _, l := range lines {
		for i, c := range l.cells[:len(l.cells)-1] {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		last := len(l.cells) - 1
		for i, c := range l.cells[:last] {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+gap))
		}
		b.WriteString(l.cells[last])
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing status table: %w", err)
	}
	return nil
}

// group returns the program whose instance p is, "" for a program
// without replicas (whose name is its program's).
func group(p ProgramStatus) string {
	if p.Program == "" || p.Program == p.Name {
		return ""
	}
	return p.Program
}

// tableStates orders the states in a group's summary.
var tableStates = []string{"running", "starting", "waiting", "backoff", "open", "stopping", "stopped", "exited"}

// stateCounts summarises instances by state: "2 running, 1 backoff".
func stateCounts(ps []ProgramStatus) string {
	counts := map[string]int{}
	order := slices.Clone(tableStates)
	for _, p := range ps {
		st := cell(p.State)
		if counts[st] == 0 && !slices.Contains(order, st) {
			order = append(order, st)
		}
		counts[st]++
	}
	var parts []string
	for _, st := range order {
		if n := counts[st]; n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+st)
		}
	}
	return strings.Join(parts, ", ")
}

// cell keeps an empty value from collapsing its column.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// seconds converts a JSON seconds value to a duration, treating values
// that are not finite or not positive as zero.
func seconds(f float64) time.Duration {
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(f * float64(time.Second))
}

func breakerCell(b BreakerStatus) string {
	switch b.State {
	case "closed":
		if b.Failures > 0 && b.MaxFailures > 0 {
			return fmt.Sprintf("closed %d/%d", b.Failures, b.MaxFailures)
		}
		if b.Failures > 0 {
			return fmt.Sprintf("closed %d", b.Failures)
		}
		return "closed"
	case "open":
		// Round up: an open breaker never shows "open 0s".
		d := seconds(b.RemainingSeconds)
		if r := d % time.Second; r != 0 {
			d += time.Second - r
		}
		return "open " + FormatDuration(d)
	default:
		return cell(b.State)
	}
}

func probesCell(ps *ProbesStatus) string {
	if ps == nil {
		return "-"
	}
	var parts []string
	for _, pr := range []struct {
		name string
		st   *ProbeStatus
	}{{"ready", ps.Readiness}, {"live", ps.Liveness}} {
		switch {
		case pr.st == nil:
		case pr.st.State == "passing":
			parts = append(parts, pr.name+" ok")
		case pr.st.State == "failing" || pr.st.ConsecutiveFailures > 0:
			parts = append(parts, fmt.Sprintf("%s fail %d", pr.name, pr.st.ConsecutiveFailures))
		default:
			parts = append(parts, pr.name+" ?")
		}
	}
	return cell(strings.Join(parts, ", "))
}

func lastExitCell(e *ExitStatus) string {
	switch {
	case e == nil:
		return "-"
	case e.Error != "":
		return "spawn error"
	case e.Signal != "":
		return "signal " + e.Signal
	default:
		return "exit " + strconv.Itoa(e.Code)
	}
}

// FormatDuration writes d compactly with its two largest units, rounded
// down: 45s, 3m12s, 2h03m, 3d04h. Durations under a second, and negative
// ones, are "0s".
func FormatDuration(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}
