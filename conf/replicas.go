package conf

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Replicas (SPEC §13). A program whose table (or [defaults]) sets
// replicas = N runs N instances named NAME:0 ... NAME:N-1, each a full
// Program of its own; one that does not set it runs one instance named
// NAME, as before replicas existed. Setting the key, even to 1, is what
// makes the names indexed, so that scaling a program never renames the
// instances that keep running (and depends_on = ["web:0"] or a dashboard
// keyed by instance stays valid at any count).
//
// In every program, the templates {replica} (the index, 0 without
// replicas) and {name} (the instance name) are replaced in the settings
// listed by templated.

// MaxReplicas is the largest replicas count (and `supervise scale` count).
const MaxReplicas = 10000

// The variables that tell every program who it is.
const (
	EnvProgram  = "SUPERVISE_PROGRAM"  // the program: "web"
	EnvReplica  = "SUPERVISE_REPLICA"  // the index: "0"
	EnvInstance = "SUPERVISE_INSTANCE" // the instance: "web:0" ("web" without replicas)
)

// Identity returns the variables EnvProgram, EnvReplica and EnvInstance
// of the instance p, as "KEY=value" strings.
func (p *Program) Identity() [3]string {
	return [3]string{
		EnvProgram + "=" + p.Base,
		EnvReplica + "=" + strconv.Itoa(p.Replica),
		EnvInstance + "=" + p.Name,
	}
}

// InstanceName is the name of replica i of program base: "web:2".
func InstanceName(base string, i int) string { return base + ":" + strconv.Itoa(i) }

// SplitInstance splits an instance name "web:2" into its program "web"
// and index 2. For any other name (no ":", or a part after it that is not
// an index written without leading zeros) it returns name itself and
// ok false.
func SplitInstance(name string) (base string, replica int, ok bool) {
	b, idx, found := strings.Cut(name, ":")
	if !found || b == "" || idx == "" || len(idx) > 9 || (len(idx) > 1 && idx[0] == '0') {
		return name, 0, false
	}
	n := 0
	for i := 0; i < len(idx); i++ {
		c := idx[i]
		if c < '0' || c > '9' {
			return name, 0, false
		}
		n = n*10 + int(c-'0')
	}
	return b, n, true
}

// templatedKey is a setting in which the templates are replaced: each
// visits every string of the setting in p, which it may change.
type templatedKey struct {
	key  string // as Diff names it
	path bool   // a path: cleaned after the replacement
	each func(p *Program, f func(s *string))
	// check, when set, validates a value once its templates are replaced
	// (the decoder checks a value without templates); what names the
	// value in its error ("URL").
	check func(string) error
	what  string
}

// hasTemplate reports whether s holds {replica} or {name}: a value whose
// check waits for each instance's replacement.
func hasTemplate(s string) bool {
	return strings.Contains(s, "{replica}") || strings.Contains(s, "{name}")
}

// probeEach visits the target of the probe that get returns, if any: the
// argv of an exec probe, element by element, or its URL or address.
func probeEach(get func(p *Program) *Probe, target func(pr *Probe) []*string) func(*Program, func(*string)) {
	return func(p *Program, f func(*string)) {
		if pr := get(p); pr != nil {
			for _, s := range target(pr) {
				f(s)
			}
		}
	}
}

// probeTemplated lists the templated targets of the probe table key
// (readiness or liveness).
func probeTemplated(key string, get func(p *Program) *Probe) []templatedKey {
	return []templatedKey{
		{key: key + ".exec", each: probeEach(get, func(pr *Probe) []*string {
			out := make([]*string, len(pr.Exec))
			for i := range pr.Exec {
				out[i] = &pr.Exec[i]
			}
			return out
		})},
		{key: key + ".http", check: checkProbeURL, what: "URL", each: probeEach(get, func(pr *Probe) []*string {
			if pr.HTTP == "" {
				return nil
			}
			return []*string{&pr.HTTP}
		})},
		{key: key + ".tcp", check: checkHostPort, what: "address", each: probeEach(get, func(pr *Probe) []*string {
			if pr.TCP == "" {
				return nil
			}
			return []*string{&pr.TCP}
		})},
	}
}

// templated lists the settings in which {replica} and {name} are
// replaced. A new templated setting is one entry here.
var templated = slices.Concat([]templatedKey{
	{key: "command", each: func(p *Program, f func(*string)) {
		for i := range p.Command {
			f(&p.Command[i])
		}
	}},
	{key: "directory", path: true, each: func(p *Program, f func(*string)) { f(&p.Directory) }},
	{key: "environment", each: func(p *Program, f func(*string)) {
		for k, v := range p.Environment {
			f(&v)
			p.Environment[k] = v
		}
	}},
	{key: "stdout", path: true, each: func(p *Program, f func(*string)) {
		if p.Stdout.Kind == OutputFile {
			f(&p.Stdout.Path)
		}
	}},
	{key: "stderr", path: true, each: func(p *Program, f func(*string)) {
		if p.Stderr.Kind == OutputFile {
			f(&p.Stderr.Path)
		}
	}},
	{key: "watchdog.heartbeat_file", path: true, each: func(p *Program, f func(*string)) {
		if p.Watchdog != nil {
			f(&p.Watchdog.HeartbeatFile)
		}
	}},
},
	probeTemplated("readiness", func(p *Program) *Probe { return p.Readiness }),
	probeTemplated("liveness", func(p *Program) *Probe { return p.Liveness }),
)

// perInstance lists the settings that must differ between instances, so
// that two of them never share a file: with more than one instance each
// must hold a template.
var perInstance = []string{"stdout", "stderr", "watchdog.heartbeat_file"}

// replace replaces the templates in s, a value of the setting tk, for
// the instance name of index replica; a path is cleaned again.
func (tk templatedKey) replace(s, name string, replica int) string {
	if !strings.Contains(s, "{") {
		return s
	}
	r := strings.ReplaceAll(s, "{replica}", strconv.Itoa(replica))
	r = strings.ReplaceAll(r, "{name}", name)
	if tk.path && r != s {
		r = filepath.Clean(r)
	}
	return r
}

// problem is something that keeps a definition from running n instances.
type problem struct{ key, msg string }

// instanceName is the name of instance i of the definition p.
func (p *Program) instanceName(i int) string {
	if p.Replicated {
		return InstanceName(p.Name, i)
	}
	return p.Name
}

// scaleProblems says why the definition p cannot run n instances: a count
// out of range, a templated value that is invalid for one of them (a
// probe's URL with a port out of range), or with more than one instance a
// file setting that all would share.
func (p *Program) scaleProblems(n int) []problem {
	if n < 0 || n > MaxReplicas {
		return []problem{{"replicas", fmt.Sprintf("%d replicas: must be between 0 and %d", n, MaxReplicas)}}
	}
	var out []problem
	for _, tk := range templated {
		if tk.check == nil {
			continue
		}
		tk.each(p, func(s *string) {
			if !hasTemplate(*s) {
				return
			}
			for i := range n {
				name := p.instanceName(i)
				r := tk.replace(*s, name, i)
				if err := tk.check(r); err != nil {
					out = append(out, problem{tk.key, fmt.Sprintf("invalid %s %q for %s (from %q): %v", tk.what, r, name, *s, err)})
					return
				}
			}
		})
	}
	if n <= 1 {
		return out
	}
	for _, tk := range templated {
		if !slices.Contains(perInstance, tk.key) {
			continue
		}
		tk.each(p, func(s *string) {
			// What the first two instances make of it tells whether
			// every instance gets its own.
			first := tk.replace(*s, InstanceName(p.Name, 0), 0)
			if first == tk.replace(*s, InstanceName(p.Name, 1), 1) {
				out = append(out, problem{tk.key, fmt.Sprintf(
					"with %d replicas every instance would use %s: put {replica} or {name} in it", n, first)})
			}
		})
	}
	return out
}

// checkReplicas reports, for the definition p, the settings that keep it
// from running its replicas.
func (t *table) checkReplicas(p *Program) {
	for _, pr := range p.scaleProblems(p.Replicas) {
		t.keyErr(strings.Split(pr.key, "."), "%s", pr.msg)
	}
}

// instance returns instance i of the definition p, made with a count of
// n: a copy that shares no memory with p, named, with its templates
// replaced.
func (p *Program) instance(i, n int) *Program {
	q := *p
	programKeys.copyTo(&q, p)
	q.Base, q.Replica, q.Replicas = p.Name, i, n
	q.Name = p.instanceName(i)
	for _, tk := range templated {
		tk.each(&q, func(s *string) { *s = tk.replace(*s, q.Name, i) })
	}
	return &q
}

// Instances returns the n instances of the definition p (an entry of
// Config.Definitions), as `supervise scale` makes them: NAME:0 ...
// NAME:N-1, each with its own copy of the settings and the templates
// replaced. A program without replicas has exactly one instance, NAME.
// It fails, naming the key, when n is out of range, when the program has
// no replicas setting and n is not 1, or when with n > 1 instances would
// share a heartbeat or output file.
func (p *Program) Instances(n int) ([]*Program, error) {
	if !p.Replicated && n != 1 {
		return nil, fmt.Errorf("programs.%s: no replicas setting, so it runs as one instance: set replicas in [programs.%s] to scale it",
			p.Name, p.Name)
	}
	if probs := p.scaleProblems(n); len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, pr := range probs {
			msgs[i] = fmt.Sprintf("key %q: %s", pr.key, pr.msg)
		}
		return nil, fmt.Errorf("programs.%s: %s", p.Name, strings.Join(msgs, "; "))
	}
	out := make([]*Program, n)
	for i := range out {
		out[i] = p.instance(i, n)
	}
	return out, nil
}

// expand fills Programs and Order with the instances of the definitions,
// which must be valid.
func (c *Config) expand() {
	c.Programs = make(map[string]*Program, len(c.DefinitionOrder))
	c.Order = make([]string, 0, len(c.DefinitionOrder))
	for _, name := range c.DefinitionOrder {
		d := c.Definitions[name]
		for i := range d.Replicas {
			q := d.instance(i, d.Replicas)
			c.Programs[q.Name] = q
			c.Order = append(c.Order, q.Name)
		}
	}
}

// InstanceNames returns the names of the first n instances of the
// definition p: NAME:0 ... NAME:n-1, or NAME for a program without
// replicas.
func (p *Program) InstanceNames(n int) []string {
	if !p.Replicated {
		return []string{p.Name}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = InstanceName(p.Name, i)
	}
	return out
}

// replicaRange describes the instances of a program with n replicas, for
// error messages: "3 replicas (web:0 to web:2)".
func replicaRange(base string, n int) string {
	switch n {
	case 0:
		return "replicas = 0 (no instances)"
	case 1:
		return "1 replica (" + InstanceName(base, 0) + ")"
	}
	return fmt.Sprintf("%d replicas (%s to %s)", n, InstanceName(base, 0), InstanceName(base, n-1))
}

// InstanceSummary returns a one-line description of the instance p of
// definition def, for `supervise validate`: "NAME: COMMAND", followed by
// the templated settings whose values the replacement changed
// ("web:1: /usr/bin/web --port 8001 (stdout /var/log/web-1.log)");
// environment variables are named without their values.
func (p *Program) InstanceSummary(def *Program) string {
	var parts []string
	for _, tk := range templated {
		if tk.key == "command" {
			continue
		}
		var before, after []string
		tk.each(def, func(s *string) { before = append(before, *s) })
		if tk.key == "environment" {
			for k, v := range p.Environment {
				if def.Environment[k] != v {
					after = append(after, k)
				}
			}
			if len(after) > 0 {
				slices.Sort(after)
				parts = append(parts, "environment "+strings.Join(after, ","))
			}
			continue
		}
		tk.each(p, func(s *string) { after = append(after, *s) })
		if strings.Join(before, "\x00") != strings.Join(after, "\x00") {
			parts = append(parts, tk.key+" "+strings.Join(after, " "))
		}
	}
	s := p.Name + ": " + strings.Join(p.Command, " ")
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

// Scaled returns a copy of c in which program name (a definition with
// replicas) runs n instances: what `supervise scale` makes the running
// configuration, so that a later diff (reload --dry-run) starts from
// what runs. c is not changed; the copy shares with it what is not
// changed. It fails as Instances does, or for a name that is no program.
func (c *Config) Scaled(name string, n int) (*Config, error) {
	def := c.Definitions[name]
	if def == nil {
		return nil, fmt.Errorf("no program named %q", name)
	}
	insts, err := def.Instances(n)
	if err != nil {
		return nil, err
	}
	nc := *c
	d := *def
	d.Replicas = n
	nc.Definitions = maps.Clone(c.Definitions)
	nc.Definitions[name] = &d
	nc.Programs = maps.Clone(c.Programs)
	for _, old := range def.InstanceNames(def.Replicas) {
		delete(nc.Programs, old)
	}
	for _, q := range insts {
		nc.Programs[q.Name] = q
	}
	nc.Order = make([]string, 0, len(nc.Programs))
	for _, dn := range nc.DefinitionOrder {
		dp := nc.Definitions[dn]
		nc.Order = append(nc.Order, dp.InstanceNames(dp.Replicas)...)
	}
	return &nc, nil
}
