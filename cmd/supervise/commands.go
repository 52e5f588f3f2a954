package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
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
func cmdRun(inv *control.Invocation, _, stderr io.Writer) (int, error) {
	cfgFlag, socketFlag := inv.Value("config"), inv.Value("socket")
	level, format, command := inv.Value("log-level"), inv.Value("log-format"), inv.Rest
	if socketFlag == "" {
		socketFlag = os.Getenv("SUPERVISE_SOCKET")
	}

	single := len(command) > 0 && cfgFlag == "" && os.Getenv("SUPERVISE_CONFIG") == ""
	var cfg *conf.Config
	var err error
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
	lines := newLineWriter(sink, cfg.Supervisor.LogFormat, atom, control.UseColor(stderr))
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
	go func() {
		// Once started, give back the executable's start-up pages.
		<-sup.Ready()
		releaseExecutablePages()
	}()
	code, err := sup.Run(context.Background())
	if err != nil {
		log.Error("cannot start", zap.Error(err))
	}
	return code, nil
}

// newLogger builds the supervisor's logger: console for people (each
// entry about a program led by its name), JSON for machines.
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
		ec.EncodeTime = zapcore.TimeEncoderOfLayout(control.ConsoleTimeLayout)
		ec.CallerKey = ""
		enc = &programFirst{Encoder: zapcore.NewConsoleEncoder(ec)}
	}
	core := zapcore.NewCore(enc, w, level)
	return zap.New(core)
}

// cmdValidate checks a file exactly as run would.
func cmdValidate(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	cfgFlag := inv.Value("config")
	path := conf.Resolve(cfgFlag)
	cfg, err := conf.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2, nil
	}
	counts := conf.Plural(len(cfg.DefinitionOrder), "program")
	for _, def := range cfg.Definitions {
		if def.Replicated {
			counts += ", " + conf.Plural(len(cfg.Order), "instance")
			break
		}
	}
	fmt.Fprintf(stdout, "%s: ok, %s\n", path, counts)
	for _, name := range cfg.DefinitionOrder {
		def := cfg.Definitions[name]
		fmt.Fprintf(stdout, "  %s%s\n", def.Summary(), origin(def.Origin()))
		if def.Replicated {
			for _, inst := range def.InstanceNames(def.Replicas) {
				fmt.Fprintf(stdout, "    %s\n", cfg.Programs[inst].InstanceSummary(def))
			}
		}
	}
	var steps []string
	for name := range cfg.Teardown {
		steps = append(steps, name)
	}
	sort.Strings(steps)
	for _, name := range steps {
		t := cfg.Teardown[name]
		fmt.Fprintf(stdout, "  %s%s\n", t.Summary(), origin(t.Origin()))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Hooks)) {
		h := cfg.Hooks[name]
		fmt.Fprintf(stdout, "  %s%s\n", h.Summary(), origin(h.Origin()))
	}
	warnings := cfg.Warnings()
	sort.SliceStable(warnings, func(i, j int) bool { return warnings[i].Line < warnings[j].Line })
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	code := 0
	if len(warnings) > 0 && inv.Bool("strict") {
		code = 1
	}
	if inv.Bool("diff") {
		if c, err := printReloadDiff(inv, stdout, stderr); err != nil || c != 0 {
			return max(c, code), err
		}
	}
	return code, nil
}

// origin formats where a program, step or hook comes from, for validate.
func origin(at string) string {
	if at == "" {
		return ""
	}
	return "  [" + at + "]"
}

// printReloadDiff asks the running supervisor for the difference a reload
// would apply (reload --dry-run) and prints it.
func printReloadDiff(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	path, code, err := socketFor(inv.Value("config"), inv.Value("socket"))
	if err != nil {
		return code, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := control.Call(ctx, path, control.Request{Version: control.ProtocolVersion, Command: control.CmdReload,
		Params: map[string]string{control.ParamDryRun: "true"}})
	if err != nil {
		fmt.Fprintf(stderr, "supervise: --diff: %v\n", err)
		return 1, nil
	}
	if inv.Bool("json") {
		fmt.Fprintf(stdout, "%s\n", resp.Diff)
		return 0, nil
	}
	fmt.Fprintf(stdout, "reload would apply:\n%s\n", resp.Message)
	return 0, nil
}

// cmdCheck is the health probe of SPEC §1: exit 0 when the supervisor's
// heartbeat file is fresh, 1 otherwise.
func cmdCheck(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	if inv.Bool("ready") {
		return checkReady(inv, stdout, stderr)
	}
	var v verdict
	code, err := checkAlive(inv, &v)
	v.Healthy = code == 0
	v.print(stdout, inv.Bool("json"))
	return code, err
}

// verdict is what check prints: one line, or with --json an object.
type verdict struct {
	Healthy  bool          `json:"healthy"`
	Reason   string        `json:"reason"`
	Programs []notReadyRow `json:"not_ready,omitempty"`
}

// notReadyRow is a program that keeps check --ready from passing.
type notReadyRow struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func (v verdict) print(w io.Writer, asJSON bool) {
	if asJSON {
		if v.Programs == nil {
			v.Programs = []notReadyRow{}
		}
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	word := "unhealthy"
	if v.Healthy {
		word = "healthy"
	}
	fmt.Fprintf(w, "%s: %s\n", word, v.Reason)
}

// checkReady asks the running supervisor for the status and passes while
// every autostart program is ready; a one-shot task that ended with
// success (exited, last run not failed) counts as ready.
func checkReady(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	asJSON := inv.Bool("json")
	fail := func(reason string) (int, error) {
		verdict{Reason: reason}.print(stdout, asJSON)
		return 1, nil
	}
	path, _, err := socketFor(inv.Value("config"), inv.Value("socket"))
	if err != nil {
		return fail(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, path, control.Request{Command: control.CmdStatus})
	if err != nil {
		return fail(err.Error())
	}
	var v verdict
	for _, p := range resp.Programs {
		if !p.Autostart || p.Ready {
			continue
		}
		if p.State == "exited" && p.LastExit != nil && !p.LastExit.Failed {
			continue // a completed one-shot task
		}
		why := "not ready"
		switch {
		case len(p.WaitingFor) > 0:
			why = "waiting for " + strings.Join(p.WaitingFor, ", ")
		case p.Error != "":
			why = p.Error
		}
		v.Programs = append(v.Programs, notReadyRow{Name: p.Name, State: p.State, Reason: why})
	}
	if len(v.Programs) > 0 {
		names := make([]string, len(v.Programs))
		for i, r := range v.Programs {
			names[i] = r.Name + " (" + r.State + ")"
		}
		v.Reason = "not ready: " + strings.Join(names, ", ")
		v.print(stdout, asJSON)
		return 1, nil
	}
	v.Healthy = true
	v.Reason = fmt.Sprintf("ready: %s", conf.Plural(len(resp.Programs), "program"))
	v.print(stdout, asJSON)
	return 0, nil
}

// checkAlive is check without --ready: exit 0 when the supervisor's
// heartbeat file is fresh, 1 otherwise, with the reason in v.
func checkAlive(inv *control.Invocation, v *verdict) (int, error) {
	cfgFlag, file, maxAge := inv.Value("config"), inv.Value("heartbeat"), inv.Value("max-age")
	var err error
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
				v.Reason = err.Error()
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
		v.Reason = "no heartbeat file (set [supervisor] heartbeat_file or pass --heartbeat FILE)"
		return 1, nil
	}
	alive, st, err := heartbeat.IsAlive(file, age, time.Now())
	if !alive {
		why := "stale"
		if err != nil {
			why = err.Error()
		}
		v.Reason = file + ": " + why
		return 1, nil
	}
	v.Reason = fmt.Sprintf("%s written %s ago by pid %d", file, time.Since(st.Timestamp).Round(time.Millisecond), st.PID)
	return 0, nil
}

// cmdControl sends a remote command to the running supervisor and prints
// its replies: exit 0, or 1 when the request failed or any program's
// result did.
func cmdControl(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	if v := inv.Value(control.ParamSince); v != "" && inv.Command.Name == control.CmdLogs {
		if _, err := control.ParseSince(v, time.Now()); err != nil {
			return 2, usageError{fmt.Sprintf("--since: %v", err)}
		}
	}
	if inv.Command.Name == control.CmdStatus && inv.Bool("watch") {
		return cmdStatusWatch(inv, stdout, stderr)
	}
	path, code, err := socketFor(inv.Value("config"), inv.Value("socket"))
	if err != nil {
		return code, err
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if inv.Command.Stream {
		// A stream lasts until the operator interrupts it.
		ctx, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	}
	defer cancel()
	print := inv.Command.Print
	if print == nil {
		print = control.PrintResponse
	}
	code = 0
	err = control.Do(ctx, path, inv.Request(), func(r control.Response) error {
		for _, res := range r.Results {
			if !res.OK {
				fmt.Fprintf(stderr, "supervise: %s: %s\n", res.Name, res.Error)
				code = 1
			}
		}
		return print(stdout, inv, r)
	})
	var re *control.RemoteError
	switch {
	case err == nil:
		return code, nil
	case inv.Command.Stream && errors.Is(err, context.Canceled):
		return code, nil
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "supervise: %s\n", re.Msg)
		return 1, nil
	}
	return 1, err
}

// socketFor finds the control socket of a control command: -s, else
// $SUPERVISE_SOCKET, else the [supervisor] socket of the configuration
// file read on its own (a file broken elsewhere still gives its socket),
// else the default. A file given with -c must be readable; one found by
// default may be missing or unreadable. The code is the exit code of a
// failure: 2 for a bad setting, 1 when no default socket can be had.
func socketFor(cfgFlag, socketFlag string) (path string, code int, err error) {
	if socketFlag == "" {
		socketFlag = os.Getenv("SUPERVISE_SOCKET")
	}
	configured := ""
	if socketFlag == "" {
		file := conf.Resolve(cfgFlag)
		data, err := os.ReadFile(file)
		switch {
		case err != nil && cfgFlag != "":
			return "", 2, fmt.Errorf("config: %w", err)
		case err == nil:
			s, _, err := control.ScanSocket(file, data)
			if err != nil {
				return "", 2, err
			}
			configured = s
		}
	}
	path, ok, err := control.SocketPath(socketFlag, configured)
	switch {
	case err != nil:
		return "", 1, err
	case !ok:
		return "", 2, errors.New("the control socket is disabled (socket = \"off\")")
	}
	return path, 0, nil
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
