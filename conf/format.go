package conf

import (
	"strconv"
	"strings"
	"time"
)

// FormatDuration writes d rounded to a unit a reader expects: three
// significant digits below a minute ("250ms", "1.5s", "6s" for
// 5.999999023s), whole seconds from a minute on ("1m30s"), and without
// trailing zero units ("1m", "2h"). ParseDuration reads the result back.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		if d == time.Duration(-1<<63) {
			d++ // -d would overflow
		}
		return "-" + FormatDuration(-d)
	}
	d = RoundDuration(d)
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// RoundDuration rounds a non-negative d as FormatDuration writes it: to
// three significant digits below a minute, to whole seconds from a minute
// on. A log field of a remaining time ("half_open_in") reads "6s", not
// "5.999948874s".
func RoundDuration(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return d
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	unit := time.Duration(1)
	for d/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit)
}

// Plural returns "1 program", "2 programs", "0 programs": n and the noun,
// with an "s" unless n is 1. `supervise validate` heads its summary with
// `FILE: ok, Plural(len(cfg.DefinitionOrder), "program")`, followed by the
// count of instances when a program has replicas.
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
