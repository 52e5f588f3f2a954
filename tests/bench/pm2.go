package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPM2Dir is where tests/bench/run.sh and .ci/run install pm2 (npm
// install --prefix); $SUPERVISE_BENCH_PM2_DIR overrides it. Without either,
// pm2 is taken from $PATH.
const DefaultPM2Dir = "/opt/supervise-bench/pm2"

// PM2Version is the pm2 release the install scripts pin.
const PM2Version = "7.0.4"

func pm2Dir() string {
	if d := os.Getenv("SUPERVISE_BENCH_PM2_DIR"); d != "" {
		return d
	}
	return DefaultPM2Dir
}

// pm2Bin returns the path of one of pm2's commands (pm2, pm2-runtime).
func pm2Bin(name string) string {
	p := filepath.Join(pm2Dir(), "node_modules", ".bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if lp, err := exec.LookPath(name); err == nil {
		return lp
	}
	return p
}

// pm2InstalledVersion reads the version of the pm2 found, "" if none.
func pm2InstalledVersion() string {
	bin, err := filepath.EvalSymlinks(pm2Bin("pm2"))
	if err != nil {
		return ""
	}
	// node_modules/pm2/bin/pm2 -> node_modules/pm2/package.json
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(bin)), "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// pm2Peer runs pm2 the way most of its users do: `pm2 start` of an
// ecosystem file spawns pm2's daemon (the "God Daemon", one node process),
// which forks each program directly (interpreter "none": no node wrapper
// between pm2 and a binary); the command line exits and the daemon stays.
// Stop request: `pm2 kill`, pm2's documented way to stop every application
// and the daemon. Everything lives under PM2_HOME in the instance's
// directory.
type pm2Peer struct{}

func (pm2Peer) name() string       { return "pm2" }
func (pm2Peer) binaries() []string { return []string{pm2Bin("pm2"), "node"} }

// pm2App is one entry of an ecosystem file, at pm2's fastest documented
// settings: restart_delay 0 (no delay before a restart), autorestart,
// treekill off (signal the program only, without a ps(1) walk of its tree),
// vizion off (no version-control metadata), output to /dev/null.
type pm2App struct {
	Name        string   `json:"name"`
	Script      string   `json:"script"`
	Args        []string `json:"args"`
	Interpreter string   `json:"interpreter"`
	ExecMode    string   `json:"exec_mode"`
	Cwd         string   `json:"cwd"`
	Autorestart bool     `json:"autorestart"`
	// RestartDelay is in ms.
	RestartDelay int  `json:"restart_delay"`
	MaxRestarts  *int `json:"max_restarts,omitempty"`
	// MinUptime is in ms.
	MinUptime *int   `json:"min_uptime,omitempty"`
	OutFile   string `json:"out_file"`
	ErrorFile string `json:"error_file"`
	Vizion    bool   `json:"vizion"`
	Treekill  bool   `json:"treekill"`
}

// pm2Ecosystem writes the ecosystem file of progs. Restarting programs get
// max_restarts 1e9 (pm2's counter of restarts within min_uptime, its
// breaker, off), except a crash loop, which keeps pm2's defaults (16
// restarts within min_uptime 1 s, then "errored").
func pm2Ecosystem(e env, progs []progSpec) (string, error) {
	var apps []pm2App
	huge := 1_000_000_000
	for _, p := range progs {
		argv := append([]string{e.probe}, probeArgs(e, p)...)
		if p.argv != nil {
			argv = p.argv
		}
		a := pm2App{Name: p.id, Script: argv[0], Args: argv[1:], Interpreter: "none", ExecMode: "fork", Cwd: e.dir,
			Autorestart: p.restart, OutFile: "/dev/null", ErrorFile: "/dev/null"}
		if p.restart && !p.crash {
			a.MaxRestarts = &huge
		}
		apps = append(apps, a)
	}
	b, err := json.MarshalIndent(map[string]any{"apps": apps}, "", " ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.dir, "conf", "ecosystem.json")
	return path, writeFile(path, string(b), 0o644)
}

// pm2Env is the environment of every pm2 command of an instance.
func pm2Env(home string) []string {
	return append(os.Environ(), "PM2_HOME="+home, "PM2_DISABLE_VERSION_CHECK=true")
}

func (pm2Peer) start(e env, progs []progSpec) (*instance, error) {
	eco, err := pm2Ecosystem(e, progs)
	if err != nil {
		return nil, err
	}
	home := filepath.Join(e.dir, "pm2home")
	out, err := os.Create(filepath.Join(e.dir, "pm2.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cli := exec.Command(pm2Bin("pm2"), "start", eco)
	cli.Dir, cli.Env, cli.Stdout, cli.Stderr = e.dir, pm2Env(home), out, out
	cli.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in := &instance{peer: "pm2", dir: e.dir, exited: make(chan struct{}), stopSig: syscall.SIGTERM}
	in.launched = mono()
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("pm2 start: %w", err)
	}
	// The command line keeps starting applications (two at a time) long
	// after the daemon is up; like the other peers' start-up, that is
	// measured by the programs' start stamps, so it goes on in the
	// background, and a teardown ends it.
	cliDone := make(chan struct{})
	var cliErr error
	go func() { cliErr = cli.Wait(); close(cliDone) }()
	in.cleanup = func() {
		select {
		case <-cliDone:
		default:
			_ = syscall.Kill(-cli.Process.Pid, syscall.SIGKILL)
			<-cliDone
		}
	}
	pidFile := filepath.Join(home, "pm2.pid")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			if in.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil && in.pid > 0 {
				break
			}
		}
		select {
		case <-cliDone:
			if _, err := os.Stat(pidFile); err == nil {
				continue // written just now
			}
			return nil, fmt.Errorf("pm2 start: %v: %s", cliErr, tail(out.Name()))
		default:
		}
		if time.Now().After(deadline) {
			in.cleanup()
			killPM2(home)
			return nil, fmt.Errorf("pm2 start: %w: no daemon pid in %s", ErrTimeout, pidFile)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := watchExit(in); err != nil {
		return nil, fmt.Errorf("pm2: %w", err)
	}
	liveMu.Lock()
	live[in] = struct{}{}
	liveMu.Unlock()
	in.stopFn = func() error {
		c := exec.Command(pm2Bin("pm2"), "kill")
		c.Dir, c.Env = e.dir, pm2Env(home)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			return fmt.Errorf("pm2 kill: %w", err)
		}
		go func() { _ = c.Wait() }()
		return nil
	}
	in.state = func(id string) string {
		c := exec.Command(pm2Bin("pm2"), "jlist")
		c.Dir, c.Env = e.dir, pm2Env(home)
		b, err := c.Output()
		if err != nil {
			return "jlist error: " + err.Error()
		}
		st, err := pm2Status(b)
		if err != nil {
			return "jlist: " + err.Error()
		}
		if s, ok := st[id]; ok {
			return s
		}
		return "not listed"
	}
	return in, nil
}

// pm2Status maps each application of `pm2 jlist` output to its status and
// restart counter ("online, 3 restarts").
func pm2Status(jlist []byte) (map[string]string, error) {
	// pm2 may print notices before the JSON array.
	if i := strings.IndexByte(string(jlist), '['); i > 0 {
		jlist = jlist[i:]
	}
	var apps []struct {
		Name string `json:"name"`
		Env  struct {
			Status   string `json:"status"`
			Restarts int    `json:"restart_time"`
		} `json:"pm2_env"`
	}
	if err := json.Unmarshal(jlist, &apps); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range apps {
		out[a.Name] = fmt.Sprintf("%s, %d restarts", a.Env.Status, a.Env.Restarts)
	}
	return out, nil
}

// killPM2 ends a daemon left by a failed start.
func killPM2(home string) {
	c := exec.Command(pm2Bin("pm2"), "kill")
	c.Env = pm2Env(home)
	_ = c.Run()
}

// watchExit closes in.exited and sets in.exitAt when in.pid, which need not
// be the harness's child, exits.
func watchExit(in *instance) error {
	fd, err := unix.PidfdOpen(in.pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", in.pid, err)
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		in.exitAt = mono()
		close(in.exited)
	}()
	return nil
}

// pm2RuntimeArgv returns the argv that runs cmd under pm2-runtime, pm2's
// container entry point, as PID 1 of a new PID namespace: pm2-runtime runs
// the daemon inside its own process (no detached daemon) and stops every
// application on SIGTERM.
func pm2RuntimeArgv(dir string, cmd []string) ([]string, []string, error) {
	e := env{dir: dir}
	eco, err := pm2Ecosystem(e, []progSpec{{id: "main", argv: cmd}})
	if err != nil {
		return nil, nil, err
	}
	argv := []string{"unshare", "--pid", "--fork", "--mount-proc", pm2Bin("pm2-runtime"), "start", eco}
	return argv, pm2Env(filepath.Join(dir, "pm2home")), nil
}
