package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// progSpec is one supervised program of a scenario.
type progSpec struct {
	id       string
	args     []string // probe flags; -stamps and -id are added
	restart  bool     // restart whenever it ends (else never)
	crash    bool     // a crash loop: supervise gets a short breaker reset
	logOut   bool     // capture stdout (supervise "log", supervisord stdout_logfile)
	argv     []string // the whole command instead of the probe's (supervise only)
	inherit  bool     // output to the supervisor's own (supervise "inherit"), as runit and s6 do without a log service
	watchdog *watchdogSpec
}

type watchdogSpec struct {
	file    string
	timeout time.Duration
}

// env is what a peer needs to lay out its configuration.
type env struct {
	dir    string // private directory of this instance
	probe  string // probe binary
	stamps string // stamp file
	sv     string // supervise binary
	// extraEnv is added to the environment of the supervisor launched.
	extraEnv []string
}

// instance is one running supervisor.
type instance struct {
	peer     string
	pid      int    // the supervisor's root process
	dir      string // its private directory
	cmd      *exec.Cmd
	launched int64 // CLOCK_MONOTONIC just before the start
	exited   chan struct{}
	exitAt   int64
	stopSig  syscall.Signal
	stopFn   func() error // the stop request when it is not a signal to pid
	state    func(id string) string
	logFile  string          // where captured program output ends up
	rusage   *syscall.Rusage // of pid, when it is the harness's child
	cleanup  func()          // ends helpers of the instance (pm2's start command); may be nil
}

// exitStatus describes how the root process ended, for error messages.
func (in *instance) exitStatus() string {
	select {
	case <-in.exited:
	default:
		return "running"
	}
	if in.cmd != nil && in.cmd.ProcessState != nil && in.cmd.Process.Pid == in.pid {
		return in.cmd.ProcessState.String()
	}
	return "exited"
}

// peer is a supervisor under test.
type peer interface {
	name() string
	binaries() []string
	start(e env, progs []progSpec) (*instance, error)
}

// probeArgs returns the probe argv (without the binary) of p.
func probeArgs(e env, p progSpec) []string {
	return append([]string{"-stamps", e.stamps, "-id", p.id}, p.args...)
}

// launch starts argv with stdout and stderr to files in e.dir.
func launch(name string, e env, argv []string, stopSig syscall.Signal) (*instance, error) {
	out, err := os.Create(filepath.Join(e.dir, name+".out"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.dir
	if len(e.extraEnv) > 0 {
		cmd.Env = append(os.Environ(), e.extraEnv...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in := &instance{peer: name, dir: e.dir, cmd: cmd, exited: make(chan struct{}), stopSig: stopSig}
	in.launched = mono()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	in.pid = cmd.Process.Pid
	liveMu.Lock()
	live[in] = struct{}{}
	liveMu.Unlock()
	go func() {
		_ = cmd.Wait()
		in.exitAt = mono()
		if cmd.ProcessState != nil {
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				in.rusage = ru
			}
		}
		close(in.exited)
	}()
	return in, nil
}

var (
	liveMu sync.Mutex
	live   = map[*instance]struct{}{}
)

// killAll kills every instance still registered and all below them; it is
// the harness's last resort when it is interrupted.
func killAll() {
	liveMu.Lock()
	defer liveMu.Unlock()
	for in := range live {
		if in.cleanup != nil {
			in.cleanup()
		}
		for _, p := range descendants(in.pid) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// stop sends the peer's stop request.
func (in *instance) stop() error {
	if in.stopFn != nil {
		return in.stopFn()
	}
	return syscall.Kill(in.pid, in.stopSig)
}

// kill ends the instance and everything below it, and waits for the root.
func (in *instance) kill() {
	select {
	case <-in.exited:
	default:
	}
	if in.cleanup != nil {
		in.cleanup()
	}
	pids := descendants(in.pid)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	select {
	case <-in.exited:
	case <-time.After(10 * time.Second):
	}
	liveMu.Lock()
	delete(live, in)
	liveMu.Unlock()
}

// writeFile writes a file, creating its directory.
func writeFile(path, text string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), mode)
}

// ---- supervise ----

// supervisePeer runs supervise; its fields make the variants of the
// watchdog figures (another binary, GOMAXPROCS, CPU pinning).
type supervisePeer struct {
	label    string   // name in the tables; "" is "supervise"
	bin      string   // supervise binary; "" is the one the harness built
	env      []string // added to the supervisor's environment
	cpus     string   // taskset -c list of the supervisor ("" is any CPU)
	progCPUs string   // taskset -c list of its programs
}

func (p supervisePeer) name() string {
	if p.label != "" {
		return p.label
	}
	return "supervise"
}
func (supervisePeer) binaries() []string { return nil }

func tomlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (sp supervisePeer) start(e env, progs []progSpec) (*instance, error) {
	if sp.bin != "" {
		e.sv = sp.bin
	}
	var b strings.Builder
	sock := filepath.Join(e.dir, "sv.sock")
	fmt.Fprintf(&b, "[supervisor]\nsocket = %q\nshutdown_timeout = \"30s\"\n\n", sock)
	fmt.Fprintf(&b, "[defaults]\nbackoff_initial = \"0s\"\nmin_uptime = \"1s\"\n\n")
	for _, p := range progs {
		argv := append([]string{e.probe}, probeArgs(e, p)...)
		if p.argv != nil {
			argv = p.argv
		}
		if sp.progCPUs != "" {
			argv = append([]string{"taskset", "-c", sp.progCPUs}, argv...)
		}
		fmt.Fprintf(&b, "[programs.%s]\ncommand = %s\n", p.id, tomlList(argv))
		if p.restart {
			b.WriteString("restart = \"always\"\n")
		} else {
			b.WriteString("restart = \"never\"\n")
		}
		if p.logOut {
			b.WriteString("stdout = \"log\"\n")
		}
		if p.inherit {
			b.WriteString("stdout = \"inherit\"\nstderr = \"inherit\"\n")
		}
		switch {
		case p.crash:
			b.WriteString("[programs." + p.id + ".breaker]\nmax_failures = 5\nreset_timeout = \"5s\"\n")
		case p.restart:
			b.WriteString("[programs." + p.id + ".breaker]\nmax_failures = 1000000\n")
		}
		if p.watchdog != nil {
			fmt.Fprintf(&b, "[programs.%s.watchdog]\nheartbeat_file = %q\ntimeout = %q\naction = \"restart\"\n",
				p.id, p.watchdog.file, p.watchdog.timeout.String())
		}
		b.WriteString("\n")
	}
	cfg := filepath.Join(e.dir, "conf", "supervise.toml")
	if err := writeFile(cfg, b.String(), 0o644); err != nil {
		return nil, err
	}
	argv := []string{e.sv, "run", "-c", cfg}
	if sp.cpus != "" {
		argv = append([]string{"taskset", "-c", sp.cpus}, argv...)
	}
	e.extraEnv = append(e.extraEnv, sp.env...)
	in, err := launch(sp.name(), e, argv, syscall.SIGTERM)
	if err != nil {
		return nil, err
	}
	in.logFile = filepath.Join(e.dir, sp.name()+".out")
	in.state = func(id string) string {
		out, err := exec.Command(e.sv, "status", "-s", sock, "--json").Output()
		if err != nil {
			return "status error: " + err.Error()
		}
		var st struct {
			Programs []struct {
				Name    string `json:"name"`
				State   string `json:"state"`
				Breaker struct {
					State    string `json:"state"`
					Failures int    `json:"failures"`
				} `json:"breaker"`
				Stats struct {
					Starts   int `json:"starts"`
					Rejected int `json:"rejected"`
				} `json:"stats"`
			} `json:"programs"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return "status: " + err.Error()
		}
		for _, p := range st.Programs {
			if p.Name == id {
				return fmt.Sprintf("%s, breaker %s", p.State, p.Breaker.State)
			}
		}
		return "not listed"
	}
	return in, nil
}

// ---- supervisord ----

type supervisordPeer struct{}

func (supervisordPeer) name() string       { return "supervisord" }
func (supervisordPeer) binaries() []string { return []string{"supervisord", "supervisorctl"} }

func (supervisordPeer) start(e env, progs []progSpec) (*instance, error) {
	var b strings.Builder
	sock := filepath.Join(e.dir, "supervisor.sock")
	fmt.Fprintf(&b, `[supervisord]
nodaemon=true
logfile=%s
pidfile=%s
childlogdir=%s
minfds=20000

[unix_http_server]
file=%s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%s

`, filepath.Join(e.dir, "supervisord.log"), filepath.Join(e.dir, "supervisord.pid"), e.dir, sock, sock)
	logFile := ""
	for _, p := range progs {
		fmt.Fprintf(&b, "[program:%s]\ncommand=%s\nstartsecs=0\nstartretries=1000000\nstopwaitsecs=10\n",
			p.id, strings.Join(append([]string{e.probe}, probeArgs(e, p)...), " "))
		fmt.Fprintf(&b, "autorestart=%v\n", p.restart)
		if p.logOut {
			logFile = filepath.Join(e.dir, p.id+".stdout")
			fmt.Fprintf(&b, "stdout_logfile=%s\nstdout_logfile_maxbytes=0\nstdout_logfile_backups=0\nstderr_logfile=NONE\n\n", logFile)
		} else {
			b.WriteString("stdout_logfile=NONE\nstderr_logfile=NONE\n\n")
		}
	}
	cfg := filepath.Join(e.dir, "conf", "supervisord.conf")
	if err := writeFile(cfg, b.String(), 0o644); err != nil {
		return nil, err
	}
	in, err := launch("supervisord", e, []string{"supervisord", "-n", "-c", cfg}, syscall.SIGTERM)
	if err != nil {
		return nil, err
	}
	in.logFile = logFile
	in.state = func(id string) string {
		out, _ := exec.Command("supervisorctl", "-c", cfg, "status", id).CombinedOutput()
		fs := strings.Fields(string(out))
		if len(fs) >= 2 {
			return fs[1]
		}
		return strings.TrimSpace(string(out))
	}
	return in, nil
}

// ---- runit ----

type runitPeer struct{}

func (runitPeer) name() string       { return "runit" }
func (runitPeer) binaries() []string { return []string{"runsvdir", "runsv", "sv"} }

// serviceDirs lays out one service directory per program: run is a
// symbolic link to the probe, which reads its flags from probe.args.
func serviceDirs(e env, progs []progSpec, notify bool) (string, error) {
	scan := filepath.Join(e.dir, "service")
	for _, p := range progs {
		d := filepath.Join(scan, p.id)
		args := probeArgs(e, p)
		if notify {
			args = append(args, "-notify-fd", "3")
			if err := writeFile(filepath.Join(d, "notification-fd"), "3\n", 0o644); err != nil {
				return "", err
			}
		}
		if err := writeFile(filepath.Join(d, "probe.args"), strings.Join(args, " ")+"\n", 0o644); err != nil {
			return "", err
		}
		if err := os.Symlink(e.probe, filepath.Join(d, "run")); err != nil {
			return "", err
		}
	}
	return scan, nil
}

// runsvdirMax is how many services one runsvdir supervises (runit's
// MAXSERVICES; it logs "too many services" beyond).
const runsvdirMax = 1000

// runitLayout lays out the service directories of progs and returns the
// directory runsvdir scans and each program's service directory.
func runitLayout(e env, progs []progSpec) (string, map[string]string, error) {
	scan := filepath.Join(e.dir, "service")
	dirOf := map[string]string{}
	if len(progs) <= runsvdirMax {
		var err error
		if scan, err = serviceDirs(e, progs, false); err != nil {
			return "", nil, err
		}
		for _, p := range progs {
			dirOf[p.id] = filepath.Join(scan, p.id)
		}
		return scan, dirOf, nil
	}
	// More services than one runsvdir takes: groups of 1000 under nested
	// runsvdirs, each a service of the top one (runit's own way to split a
	// tree). A group's control/t turns the TERM its runsv gets at shutdown
	// into the HUP that makes its runsvdir stop its services.
	for g := 0; g*runsvdirMax < len(progs); g++ {
		ge := e
		ge.dir = filepath.Join(e.dir, fmt.Sprintf("group%02d", g))
		chunk := progs[g*runsvdirMax : min(len(progs), (g+1)*runsvdirMax)]
		gscan, err := serviceDirs(ge, chunk, false)
		if err != nil {
			return "", nil, err
		}
		for _, p := range chunk {
			dirOf[p.id] = filepath.Join(gscan, p.id)
		}
		sd := filepath.Join(scan, fmt.Sprintf("group%02d", g))
		if err := writeFile(filepath.Join(sd, "run"), "#!/bin/sh\nexec runsvdir "+gscan+"\n", 0o755); err != nil {
			return "", nil, err
		}
		if err := writeFile(filepath.Join(sd, "control", "t"), "#!/bin/sh\nexec kill -HUP \"$(cat supervise/pid)\"\n", 0o755); err != nil {
			return "", nil, err
		}
	}
	return scan, dirOf, nil
}

func (runitPeer) start(e env, progs []progSpec) (*instance, error) {
	scan, dirOf, err := runitLayout(e, progs)
	if err != nil {
		return nil, err
	}
	// SIGHUP makes runsvdir send TERM to every runsv and exit; each runsv
	// then stops its service and exits.
	in, err := launch("runit", e, []string{"runsvdir", scan}, syscall.SIGHUP)
	if err != nil {
		return nil, err
	}
	in.state = func(id string) string {
		out, _ := exec.Command("sv", "status", dirOf[id]).CombinedOutput()
		s := strings.TrimSpace(string(out))
		if i := strings.IndexByte(s, ':'); i > 0 {
			s = s[:i]
		}
		return s
	}
	return in, nil
}

// ---- s6 ----

type s6Peer struct{ notify bool }

func (p s6Peer) name() string {
	if p.notify {
		return "s6-notify"
	}
	return "s6"
}
func (s6Peer) binaries() []string { return []string{"s6-svscan", "s6-supervise", "s6-svstat"} }

func (p s6Peer) start(e env, progs []progSpec) (*instance, error) {
	scan, err := serviceDirs(e, progs, p.notify)
	if err != nil {
		return nil, err
	}
	// SIGTERM: s6-svscan tells every s6-supervise to stop its service and
	// exit, then exits.
	in, err := launch(p.name(), e, []string{"s6-svscan", "-c", fmt.Sprint(max(4096, len(progs)+16)), scan}, syscall.SIGTERM)
	if err != nil {
		return nil, err
	}
	in.state = func(id string) string {
		out, _ := exec.Command("s6-svstat", filepath.Join(scan, id)).CombinedOutput()
		fs := strings.Fields(string(out))
		if len(fs) > 0 {
			return fs[0]
		}
		return strings.TrimSpace(string(out))
	}
	return in, nil
}

// ---- PID-1 inits (tini, dumb-init, supervise --) ----

// initArgv returns the argv that runs cmd under init as PID 1 of a new
// PID namespace.
func initArgv(init, sv string, cmd []string) []string {
	base := []string{"unshare", "--pid", "--fork", "--mount-proc"}
	switch init {
	case "supervise":
		return append(append(base, sv, "--"), cmd...)
	case "tini":
		return append(append(base, "tini", "--"), cmd...)
	case "dumb-init":
		return append(append(base, "dumb-init"), cmd...)
	}
	return nil
}
