package conf

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ConfigDiff is what applying one configuration in place of another does,
// as a reload applies it (SPEC §7): programs added (started if autostart),
// removed (stopped), changed (restarted, or updated in place when no
// changed key needs a restart) and unchanged (not touched); the same for
// the teardown steps and the hooks; and the [supervisor] keys that differ.
// It names keys, never values: an environment's values may be secrets.
type ConfigDiff struct {
	Added      []DiffEntry  `json:"added"`
	Removed    []DiffEntry  `json:"removed"`
	Changed    []DiffChange `json:"changed"`
	Unchanged  []string     `json:"unchanged"`
	Teardown   StepsDiff    `json:"teardown"`
	Hooks      StepsDiff    `json:"hooks"`
	Supervisor []string     `json:"supervisor"` // changed [supervisor] keys
}

// DiffEntry is a program or step added or removed, with where it is (for
// a removed one, where it was) defined: Origin's "FILE:LINE". For a
// program with replicas, Instances names its instances (those started,
// or those stopped).
type DiffEntry struct {
	Name      string   `json:"name"`
	Origin    string   `json:"origin,omitempty"`
	Instances []string `json:"instances,omitempty"`
}

// DiffChange is a program or step whose settings changed: the keys that
// differ, as Program.Diff names them, and, for a program, whether the
// change restarts it (false: applied to the running process in place).
// A program whose replicas changed has Replicas set.
type DiffChange struct {
	Name     string       `json:"name"`
	Origin   string       `json:"origin,omitempty"`
	Keys     []string     `json:"keys"`
	Restart  bool         `json:"restart"`
	Replicas *CountChange `json:"replicas,omitempty"`
}

// CountChange is a change of a program's replicas: the count of
// instances before and after. With Renamed, replicas was added or
// removed, so the instances change names (web becomes web:0, or the
// reverse): the old ones stop and the new ones start.
type CountChange struct {
	From    int  `json:"from"`
	To      int  `json:"to"`
	Renamed bool `json:"renamed,omitempty"`
}

// String writes the change for a terminal: "replicas 2 -> 4 (starts
// web:2, web:3)", "replicas 1 -> 1, renamed".
func (c *CountChange) String(name string) string {
	s := fmt.Sprintf("replicas %d -> %d", c.From, c.To)
	switch {
	case c.Renamed:
		s += ", renamed"
	case c.To > c.From:
		s += " (starts " + instanceRange(name, c.From, c.To) + ")"
	case c.To < c.From:
		s += " (stops " + instanceRange(name, c.To, c.From) + ")"
	}
	return s
}

// instanceRange names the instances from..to-1 of base: "web:2",
// "web:2, web:3", "web:2 to web:9".
func instanceRange(base string, from, to int) string {
	switch to - from {
	case 1:
		return InstanceName(base, from)
	case 2:
		return InstanceName(base, from) + ", " + InstanceName(base, from+1)
	}
	return InstanceName(base, from) + " to " + InstanceName(base, to-1)
}

// instancesOf names the instances of the definition p, for DiffEntry: nil
// for a program without replicas.
func instancesOf(p *Program) []string {
	if !p.Replicated {
		return nil
	}
	return p.InstanceNames(p.Replicas)
}

// StepsDiff is the diff of the teardown steps, or of the hooks.
type StepsDiff struct {
	Added     []DiffEntry  `json:"added"`
	Removed   []DiffEntry  `json:"removed"`
	Changed   []DiffChange `json:"changed"`
	Unchanged []string     `json:"unchanged"`
}

// Compare returns the diff from old (the running configuration) to new
// (the one a reload would apply). Programs are listed in the order of
// new, removed ones in the order of old, steps and hooks by name. Every list is
// non-nil, so the JSON form has arrays, never null. Programs are
// compared as tables (Definitions), with their templates: a program with
// replicas is one entry, whose change of count is its Replicas.
func Compare(old, new *Config) *ConfigDiff {
	d := &ConfigDiff{
		Added: []DiffEntry{}, Removed: []DiffEntry{}, Changed: []DiffChange{}, Unchanged: []string{},
		Supervisor: old.Supervisor.Diff(&new.Supervisor),
	}
	if d.Supervisor == nil {
		d.Supervisor = []string{}
	}
	for _, name := range old.DefinitionOrder {
		if op := old.Definitions[name]; new.Definitions[name] == nil {
			d.Removed = append(d.Removed, DiffEntry{Name: name, Origin: op.Origin(), Instances: instancesOf(op)})
		}
	}
	for _, name := range new.DefinitionOrder {
		np, op := new.Definitions[name], old.Definitions[name]
		switch {
		case op == nil:
			d.Added = append(d.Added, DiffEntry{Name: name, Origin: np.Origin(), Instances: instancesOf(np)})
		case op.Equal(np) && op.Replicated == np.Replicated:
			d.Unchanged = append(d.Unchanged, name)
		default:
			keys := op.Diff(np)
			c := DiffChange{Name: name, Origin: np.Origin(), Keys: keys, Restart: slices.ContainsFunc(keys, NeedsRestart)}
			if renamed := op.Replicated != np.Replicated; renamed || op.Replicas != np.Replicas {
				c.Replicas = &CountChange{From: op.Replicas, To: np.Replicas, Renamed: renamed}
				if renamed {
					// The instances are others: the old stop, the new start.
					c.Restart = true
					if !slices.Contains(keys, "replicas") {
						c.Keys = append(slices.Clone(keys), "replicas")
					}
				}
			}
			d.Changed = append(d.Changed, c)
		}
	}
	d.Teardown = diffSteps(old.Teardown, new.Teardown, teardownKeys)
	d.Hooks = diffSteps(old.Hooks, new.Hooks, hookKeys)
	return d
}

// step is what diffSteps needs of a teardown step or a hook.
type step[S any] interface {
	*S
	Equal(*S) bool
	Origin() string
}

// diffSteps compares two sets of named tables of one schema (teardown
// steps or hooks), by name; every list is non-nil.
func diffSteps[S any, P step[S]](old, new map[string]*S, keys schema[S]) StepsDiff {
	d := StepsDiff{Added: []DiffEntry{}, Removed: []DiffEntry{}, Changed: []DiffChange{}, Unchanged: []string{}}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if new[name] == nil {
			d.Removed = append(d.Removed, DiffEntry{Name: name, Origin: P(old[name]).Origin()})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(new)) {
		now, was := new[name], old[name]
		switch {
		case was == nil:
			d.Added = append(d.Added, DiffEntry{Name: name, Origin: P(now).Origin()})
		case P(was).Equal(now):
			d.Unchanged = append(d.Unchanged, name)
		default:
			d.Changed = append(d.Changed, DiffChange{Name: name, Origin: P(now).Origin(), Keys: keys.diff("", was, now, nil)})
		}
	}
	return d
}

// Empty reports whether applying the diff would change nothing.
func (d *ConfigDiff) Empty() bool {
	t, h := d.Teardown, d.Hooks
	return len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Supervisor)+
		len(t.Added)+len(t.Removed)+len(t.Changed)+
		len(h.Added)+len(h.Removed)+len(h.Changed) == 0
}

// String writes the diff for a terminal, one line per change, then the
// count of unchanged programs:
//
//	added api (conf.d/api.toml:1)
//	added queue (conf.d/queue.toml:1): queue:0 to queue:3
//	removed old (supervise.toml:12)
//	changed web (supervise.toml:5): command, env_file; restarts
//	changed worker (conf.d/worker.toml:1): stop_timeout; in place
//	changed api (supervise.toml:20): replicas 2 -> 4 (starts api:2, api:3); in place
//	teardown added flush (supervise.toml:30)
//	hook changed page (conf.d/hooks.toml:1): events
//	supervisor changed: log_level
//	unchanged: 3 programs
func (d *ConfigDiff) String() string {
	var b strings.Builder
	at := func(origin string) string {
		if origin == "" {
			return ""
		}
		return " (" + origin + ")"
	}
	entries := func(prefix string, es []DiffEntry) {
		for _, e := range es {
			fmt.Fprintf(&b, "%s %s%s", prefix, e.Name, at(e.Origin))
			if n := len(e.Instances); n > 0 {
				fmt.Fprintf(&b, ": %s", instanceRange(e.Name, 0, n))
			}
			b.WriteByte('\n')
		}
	}
	entries("added", d.Added)
	entries("removed", d.Removed)
	for _, c := range d.Changed {
		how := "in place"
		if c.Restart {
			how = "restarts"
		}
		keys := slices.Clone(c.Keys)
		if c.Replicas != nil {
			if i := slices.Index(keys, "replicas"); i >= 0 {
				keys[i] = c.Replicas.String(c.Name)
			}
		}
		fmt.Fprintf(&b, "changed %s%s: %s; %s\n", c.Name, at(c.Origin), strings.Join(keys, ", "), how)
	}
	entries("teardown added", d.Teardown.Added)
	entries("teardown removed", d.Teardown.Removed)
	for _, c := range d.Teardown.Changed {
		fmt.Fprintf(&b, "teardown changed %s%s: %s\n", c.Name, at(c.Origin), strings.Join(c.Keys, ", "))
	}
	entries("hook added", d.Hooks.Added)
	entries("hook removed", d.Hooks.Removed)
	for _, c := range d.Hooks.Changed {
		fmt.Fprintf(&b, "hook changed %s%s: %s\n", c.Name, at(c.Origin), strings.Join(c.Keys, ", "))
	}
	if len(d.Supervisor) > 0 {
		fmt.Fprintf(&b, "supervisor changed: %s\n", strings.Join(d.Supervisor, ", "))
	}
	if d.Empty() {
		fmt.Fprintf(&b, "no change: %s unchanged\n", Plural(len(d.Unchanged), "program"))
	} else {
		fmt.Fprintf(&b, "unchanged: %s\n", Plural(len(d.Unchanged), "program"))
	}
	return b.String()
}
