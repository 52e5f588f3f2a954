package lifecycle

import (
	"slices"

	"github.com/supervise/supervise/conf"
)

// Source is one kind of readiness signal a program can have configured
// (SPEC §4). A program is ready when every primary source it configures
// has reported OK; when it configures none, when every fallback source it
// configures has; when it configures neither, as soon as it is spawned.
//
// A new kind of readiness is one more Source in Sources plus whatever
// reports its Readiness events; the Machine does not change.
type Source interface {
	// Name is the source's name in Readiness events, logs and status.
	Name() string
	// Configured reports whether the program's settings use this source.
	Configured(cfg *conf.Program) bool
	// Fallback reports whether the source counts only when no primary
	// source is configured (the first heartbeat does).
	Fallback() bool
}

// Names of the built-in readiness sources.
const (
	SourceNotify    = "notify"    // READY=1 on the notify socket
	SourceHeartbeat = "heartbeat" // the first beat of the watchdog
	SourceProbe     = "probe"     // the readiness probe passing (SPEC §11)
)

type notifySource struct{}

func (notifySource) Name() string                      { return SourceNotify }
func (notifySource) Configured(cfg *conf.Program) bool { return cfg.Notify }
func (notifySource) Fallback() bool                    { return false }

type heartbeatSource struct{}

func (heartbeatSource) Name() string                      { return SourceHeartbeat }
func (heartbeatSource) Configured(cfg *conf.Program) bool { return cfg.Watchdog != nil }
func (heartbeatSource) Fallback() bool                    { return true }

// probeSource is a [readiness] table: a primary source, so with notify =
// true both READY=1 and the probe must pass. Unlike the others it can
// report OK false again, once a probe that passed fails.
type probeSource struct{}

func (probeSource) Name() string                      { return SourceProbe }
func (probeSource) Configured(cfg *conf.Program) bool { return cfg.Readiness != nil }
func (probeSource) Fallback() bool                    { return false }

// Sources are the readiness sources the supervisor knows, in the order
// status names them.
var Sources = []Source{notifySource{}, probeSource{}, heartbeatSource{}}

// Required lists the names of the sources that must report OK before a
// run of cfg is ready; empty means ready once spawned.
func Required(cfg *conf.Program) []string {
	var primary, fallback []string
	for _, s := range Sources {
		if !s.Configured(cfg) {
			continue
		}
		if s.Fallback() {
			fallback = append(fallback, s.Name())
		} else {
			primary = append(primary, s.Name())
		}
	}
	if len(primary) > 0 {
		return primary
	}
	return fallback
}

// gate combines the readiness sources of one run.
type gate struct {
	required []string
	ok       []bool
}

func newGate(required []string) gate {
	return gate{required: required, ok: make([]bool, len(required))}
}

// set records the state of source; it reports false for a source the
// program does not require, whose reports do not count.
func (g *gate) set(source string, ok bool) bool {
	i := slices.Index(g.required, source)
	if i < 0 {
		return false
	}
	g.ok[i] = ok
	return true
}

// ready reports whether every required source is OK.
func (g *gate) ready() bool {
	for _, ok := range g.ok {
		if !ok {
			return false
		}
	}
	return true
}

// reset forgets what the sources reported, for a new run.
func (g *gate) reset() {
	clear(g.ok)
}
