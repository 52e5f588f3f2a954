package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/procs"
	"github.com/supervise/supervise/supervisor"
	"github.com/supervise/supervise/watch/heartbeat"
)

// cmdRun runs the supervisor in the foreground (SPEC §1).
func cmdRun(args []string, stderr io.Writer) (int, error) {
	var cfgFlag, socketFlag, level, format string
	fs := newFlagSet()
	fs.str(&cfgFlag, "c", "config")
	fs.str(&socketFlag, "s", "socket")
	fs.str(&level, "log-level")
	fs.str(&format, "log-format")
	pos, command, err := fs.parse(args)
	if err != nil {
		return 2, err
	}
	if len(pos) > 0 {
		return 2, usageError{fmt.Sprintf("unexpected argument %q (a command to run goes after --)", pos[0])}
	}
	if socketFlag == "" {
		socketFlag = os.Getenv("SUPERVISE_SOCKET")
	}

	single := len(command) > 0 && cfgFlag == "" && os.Getenv("SUPERVISE_CONFIG") == ""
	var cfg *conf.Config
	if single {
		cfg = conf.Default()
		if err := cfg.AddCommand(command); err != nil {
			return 2, err
		}
		main := cfg.Programs[conf.MainProgram]
		main.Restart = conf.RestartNever
		main.Stdout = conf.Output{Kind: conf.OutputInherit}
		main.Stderr = conf.Output{Kind: conf.OutputInherit}
		cfg.Supervisor.Socket = "off"
		// Quiet like tini: the command's own output is what matters.
		cfg.Supervisor.LogLevel = conf.LogError
		if socketFlag != "" {
			cfg.Supervisor.Socket = socketFlag
		}
	} else {
		path := conf.Resolve(cfgFlag)
		cfg, err = conf.Load(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2, nil
		}
		if len(command) > 0 {
			if err := cfg.AddCommand(command); err != nil {
				fmt.Fprintln(stderr, err)
				return 2, nil
			}
		}
	}
	ov := conf.Overrides{LogLevel: level, LogFormat: format}
	if err := cfg.Apply(ov); err != nil {
		return 2, usageError{err.Error()}
	}

	atom := zap.NewAtomicLevel()
	if err := atom.UnmarshalText([]byte(cfg.Supervisor.LogLevel)); err != nil {
		return 2, usageError{err.Error()}
	}
	sink := newBatchWriter(stderr)
	log := newLogger(cfg.Supervisor.LogFormat, atom, sink)
	defer log.Sync()

	var sup *supervisor.Supervisor
	orphan := make(chan struct{}) // closed once sup is set
	lines := newLineWriter(sink, cfg.Supervisor.LogFormat, atom)
	reaper, err := procs.NewReaper(procs.ReaperOptions{
		Subreaper: true,
		OutputBatch: func(begin bool) {
			lines.Batch(begin)
			sink.Batch(begin)
		},
		OnOrphan: func(pid int, st unix.WaitStatus) {
			<-orphan
			sup.OrphanReaped(pid, st)
		},
	})
	if err != nil {
		log.Error("cannot start the reaper", zap.Error(err))
		return 1, nil
	}
	defer reaper.Close()

	sup, err = supervisor.New(supervisor.Options{
		Config:        cfg,
		Overrides:     ov,
		Reaper:        reaper,
		Logger:        log,
		Level:         &atom,
		Version:       version,
		SocketFlag:    socketFlag,
		SingleCommand: single,
		Lines:         lines,
		LogBatch:      sink.Batch,
		Sweep:         true,
		HandleSignals: true,
	})
	close(orphan)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 2, nil
	}
	code, err := sup.Run(context.Background())
	if err != nil {
		log.Error("cannot start", zap.Error(err))
	}
	return code, nil
}

// consoleTimeLayout is the time format of console logs.
const consoleTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// newLogger builds the supervisor's logger: console for people, JSON for
// machines.
func newLogger(format string, level zap.AtomicLevel, w zapcore.WriteSyncer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		ec.EncodeTime = zapcore.TimeEncoderOfLayout(consoleTimeLayout)
		ec.CallerKey = ""
		enc = zapcore.NewConsoleEncoder(ec)
	}
	core := zapcore.NewCore(enc, w, level)
	return zap.New(core)
}

// cmdValidate checks a file exactly as run would.
func cmdValidate(args []string, stdout, stderr io.Writer) (int, error) {
	var cfgFlag string
	fs := newFlagSet()
	fs.str(&cfgFlag, "c", "config")
	pos, rest, err := fs.parse(args)
	if err != nil {
		return 2, err
	}
	if len(pos) > 0 || len(rest) > 0 {
		return 2, usageError{"validate takes no arguments besides -c FILE"}
	}
	path := conf.Resolve(cfgFlag)
	cfg, err := conf.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2, nil
	}
	fmt.Fprintf(stdout, "%s: ok, %d programs\n", path, len(cfg.Order))
	for _, name := range cfg.Order {
		fmt.Fprintf(stdout, "  %s\n", cfg.Programs[name].Summary())
	}
	var steps []string
	for name := range cfg.Teardown {
		steps = append(steps, name)
	}
	sort.Strings(steps)
	for _, name := range steps {
		t := cfg.Teardown[name]
		fmt.Fprintf(stdout, "  teardown.%-7s priority=%d timeout=%s  %s\n", name, t.Priority, t.Timeout, strings.Join(t.Command, " "))
	}
	return 0, nil
}

// cmdCheck is the health probe of SPEC §1: exit 0 when the supervisor's
// heartbeat file is fresh, 1 otherwise.
func cmdCheck(args []string, stdout, stderr io.Writer) (int, error) {
	var cfgFlag, file, maxAge string
	fs := newFlagSet()
	fs.str(&cfgFlag, "c", "config")
	fs.str(&file, "heartbeat")
	fs.str(&maxAge, "max-age")
	pos, rest, err := fs.parse(args)
	if err != nil {
		return 2, err
	}
	if len(pos) > 0 || len(rest) > 0 {
		return 2, usageError{"check takes no arguments"}
	}
	var age time.Duration
	if maxAge != "" {
		if age, err = parseDuration(maxAge); err != nil {
			return 2, usageError{fmt.Sprintf("--max-age: %v", err)}
		}
	}
	if file == "" || age == 0 {
		cfg, err := conf.Load(conf.Resolve(cfgFlag))
		if err != nil {
			if file == "" {
				// A probe understands 0 and 1 only: no readable
				// configuration means no heartbeat to vouch for.
				fmt.Fprintf(stdout, "unhealthy: %v\n", err)
				return 1, nil
			}
			cfg = conf.Default()
		}
		if file == "" {
			file = cfg.Supervisor.HeartbeatFile
		}
		if age == 0 {
			age = 3 * cfg.Supervisor.HeartbeatInterval
		}
	}
	if file == "" {
		fmt.Fprintln(stdout, "unhealthy: no heartbeat file (set [supervisor] heartbeat_file or pass --heartbeat FILE)")
		return 1, nil
	}
	alive, st, err := heartbeat.IsAlive(file, age, time.Now())
	if !alive {
		why := "stale"
		if err != nil {
			why = err.Error()
		}
		fmt.Fprintf(stdout, "unhealthy: %s: %s\n", file, why)
		return 1, nil
	}
	fmt.Fprintf(stdout, "healthy: %s written %s ago by pid %d\n", file, time.Since(st.Timestamp).Round(time.Millisecond), st.PID)
	return 0, nil
}

// cmdControl sends one request to the running supervisor.
func cmdControl(cmd string, args []string, stdout, stderr io.Writer) (int, error) {
	var cfgFlag, socketFlag string
	var asJSON bool
	fs := newFlagSet()
	fs.str(&cfgFlag, "c", "config")
	fs.str(&socketFlag, "s", "socket")
	if cmd == "status" {
		fs.boolean(&asJSON, "json")
	}
	pos, rest, err := fs.parse(args)
	if err != nil {
		return 2, err
	}
	if len(rest) > 0 {
		return 2, usageError{"unexpected -- for " + cmd}
	}
	req := control.Request{Command: cmd}
	switch cmd {
	case "status":
		req.Names = pos
	case "start", "stop", "restart", "reset":
		if len(pos) == 0 {
			return 2, usageError{cmd + " needs at least one program name"}
		}
		req.Names = pos
	case "signal":
		if len(pos) != 2 {
			return 2, usageError{"usage: supervise signal NAME SIGNAL"}
		}
		req.Names, req.Signal = pos[:1], pos[1]
	case "reload", "shutdown":
		if len(pos) > 0 {
			return 2, usageError{cmd + " takes no arguments"}
		}
	}
	if socketFlag == "" {
		socketFlag = os.Getenv("SUPERVISE_SOCKET")
	}
	configured := ""
	if socketFlag == "" {
		if cfg, err := conf.Load(conf.Resolve(cfgFlag)); err == nil {
			configured = cfg.Supervisor.Socket
		} else if cfgFlag != "" {
			fmt.Fprintln(stderr, err)
			return 2, nil
		}
	}
	path, ok := control.SocketPath(socketFlag, configured)
	if !ok {
		return 2, errors.New("the control socket is disabled (socket = \"off\")")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := control.Call(ctx, path, req)
	if err != nil {
		return 1, err
	}
	if resp.Error != "" {
		fmt.Fprintf(stderr, "supervise: %s\n", resp.Error)
		return 1, nil
	}
	code := 0
	for _, r := range resp.Results {
		if !r.OK {
			fmt.Fprintf(stderr, "supervise: %s: %s\n", r.Name, r.Error)
			code = 1
		}
	}
	switch {
	case cmd == "status" && asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		progs := resp.Programs
		if progs == nil {
			progs = []control.ProgramStatus{}
		}
		if err := enc.Encode(map[string]any{"programs": progs}); err != nil {
			return 1, err
		}
	case cmd == "status":
		if err := control.WriteTable(stdout, resp.Programs); err != nil {
			return 1, err
		}
	case resp.Message != "":
		fmt.Fprintln(stdout, resp.Message)
	case cmd != "shutdown" && code == 0 && len(resp.Programs) > 0:
		control.WriteTable(stdout, resp.Programs)
	}
	return code, nil
}

// parseDuration accepts Go syntax ("30s") or a number of seconds ("30", "0.5").
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("%q: must be positive", s)
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e9 {
		return 0, fmt.Errorf("%q is not a duration (like \"30s\") or a positive number of seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}
