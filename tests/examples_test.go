package tests

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"github.com/supervise/supervise/conf"
)

// There is no container engine, cluster or Nomad agent where these tests
// run, so they check what can be checked without one: the Dockerfile's
// build line is run as written, the manifests parse and agree with the
// image layout the Dockerfile makes and with the configuration it ships,
// and the systemd unit passes `systemd-analyze verify` as shipped.

// examplePath names a file of examples/. It also makes the test's cached
// result depend on the binary's sources (see readSources), since these
// tests run binaries built from them.
func examplePath(name string) string {
	sourcesOnce.Do(func() { readSources(moduleRoot) })
	return filepath.Join(moduleRoot, "examples", name)
}

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	cmd, args string
	line      int
}

// dockerStage is a FROM and the instructions after it.
type dockerStage struct {
	base, name string
	instrs     []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages. It knows what the
// example uses: comments, blank lines, backslash continuations.
func parseDockerfile(t *testing.T, file string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before FROM", file, start, in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a multi-stage build", file, len(stages))
	}
	return stages
}

func (s dockerStage) all(cmd string) []dockerInstr {
	var out []dockerInstr
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// one returns the stage's only instruction cmd.
func (s dockerStage) one(t *testing.T, cmd string) dockerInstr {
	t.Helper()
	all := s.all(cmd)
	if len(all) != 1 {
		t.Fatalf("final stage: %d %s instructions, want 1", len(all), cmd)
	}
	return all[0]
}

// execForm decodes the JSON array of ENTRYPOINT, CMD or HEALTHCHECK CMD.
func execForm(t *testing.T, in dockerInstr, text string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(text), &argv); err != nil {
		t.Fatalf("line %d: %s %s is not in exec form (a JSON array): %v", in.line, in.cmd, text, err)
	}
	return argv
}

// shellWords splits a command line that uses only spaces and quotes; any
// other shell syntax is refused, so that running the words runs exactly
// what the line says.
func shellWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '"' || c == '\'':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c in %q", c, line)
			}
			quoted := line[i+1 : i+1+j]
			if c == '"' && strings.ContainsAny(quoted, "$`\\") {
				return nil, fmt.Errorf("expansion inside quotes in %q", line)
			}
			w.WriteString(quoted)
			inWord = true
			i += j + 1
		case strings.IndexByte("$`\\;&|<>(){}*?[]~#", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q in %q: keep the build line one plain command", c, line)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// imageLayout is what the example Dockerfile puts in its final image.
type imageLayout struct {
	files      map[string]string // destination in the image -> source (a stage's path or a repository file)
	binary     string            // where supervise is installed
	uid, gid   int
	configPath string       // /etc/supervise/supervise.toml
	config     *conf.Config // the configuration file it ships
	configSrc  string       // that file in the repository
}

// defaultImagePath is the PATH of the usual base images (Debian, Alpine,
// distroless), which the Dockerfile does not change.
var defaultImagePath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// resolve finds name on the image's PATH, as a container runtime does.
func (l *imageLayout) resolve(name string) (string, bool) {
	if strings.Contains(name, "/") {
		_, ok := l.files[name]
		return name, ok
	}
	for _, dir := range defaultImagePath {
		if _, ok := l.files[path.Join(dir, name)]; ok {
			return path.Join(dir, name), true
		}
	}
	return "", false
}

// readImageLayout checks the final stage of examples/Dockerfile and the
// configuration it copies, and returns the layout the manifests assume.
func readImageLayout(t *testing.T) *imageLayout {
	t.Helper()
	stages := parseDockerfile(t, examplePath("Dockerfile"))
	final := stages[len(stages)-1]
	l := &imageLayout{files: map[string]string{}}
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if len(f) < 2 {
			t.Fatalf("Dockerfile:%d: COPY %s", in.line, in.args)
		}
		from := ""
		if strings.HasPrefix(f[0], "--from=") {
			from, f = strings.TrimPrefix(f[0], "--from="), f[1:]
		}
		if len(f) != 2 {
			t.Fatalf("Dockerfile:%d: COPY of %d paths; the test follows one source to one destination", in.line, len(f))
		}
		if from != "" {
			l.files[f[1]] = from + ":" + f[0]
			continue
		}
		if _, err := os.Stat(filepath.Join(moduleRoot, f[0])); err != nil {
			t.Fatalf("Dockerfile:%d: COPY source (relative to the repository root, the build context): %v", in.line, err)
		}
		l.files[f[1]] = f[0]
	}

	ep := final.one(t, "ENTRYPOINT")
	argv := execForm(t, ep, ep.args)
	if len(argv) != 1 || argv[0] != "supervise" {
		t.Fatalf("Dockerfile:%d: ENTRYPOINT %q, want [\"supervise\"]", ep.line, argv)
	}
	bin, ok := l.resolve("supervise")
	if !ok {
		t.Fatalf("Dockerfile: no COPY puts supervise in a directory of PATH %v; copies: %v", defaultImagePath, l.files)
	}
	l.binary = bin

	hc := final.one(t, "HEALTHCHECK")
	_, cmdText, found := strings.Cut(hc.args, "CMD ")
	if !found {
		t.Fatalf("Dockerfile:%d: HEALTHCHECK without CMD", hc.line)
	}
	if argv := execForm(t, hc, strings.TrimSpace(cmdText)); strings.Join(argv, " ") != "supervise check" {
		t.Fatalf("Dockerfile:%d: HEALTHCHECK CMD %q, want [\"supervise\", \"check\"]", hc.line, argv)
	}
	if sig := final.one(t, "STOPSIGNAL"); sig.args != "SIGTERM" {
		t.Fatalf("Dockerfile:%d: STOPSIGNAL %s, want SIGTERM", sig.line, sig.args)
	}

	// A numeric, non-root USER: Kubernetes' runAsNonRoot can only verify a number.
	user := final.one(t, "USER")
	u, g, _ := strings.Cut(user.args, ":")
	var err error
	if l.uid, err = strconv.Atoi(u); err != nil || l.uid == 0 {
		t.Fatalf("Dockerfile:%d: USER %s, want a numeric uid other than 0", user.line, user.args)
	}
	if l.gid, err = strconv.Atoi(g); g != "" && (err != nil || l.gid == 0) {
		t.Fatalf("Dockerfile:%d: USER %s, want a numeric gid other than 0", user.line, user.args)
	}

	// The configuration: at the default path, named by SUPERVISE_CONFIG
	// so that check, status and reload in the container read it too.
	l.configPath = "/etc/supervise/supervise.toml"
	src, ok := l.files[l.configPath]
	if !ok {
		t.Fatalf("Dockerfile: nothing copied to %s; copies: %v", l.configPath, l.files)
	}
	env := map[string]string{}
	for _, in := range final.all("ENV") {
		k, v, _ := strings.Cut(in.args, "=")
		env[k] = v
	}
	if env["SUPERVISE_CONFIG"] != l.configPath {
		t.Fatalf("Dockerfile: ENV SUPERVISE_CONFIG=%q, want %s", env["SUPERVISE_CONFIG"], l.configPath)
	}
	l.configSrc = filepath.Join(moduleRoot, src)
	if l.config, err = conf.Load(l.configSrc); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDockerfileBuildLine runs the Dockerfile's `go build` line as written
// (with the output redirected) and checks that it makes a static, stripped,
// trimmed binary that the final stage then copies.
func TestDockerfileBuildLine(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, examplePath("Dockerfile"))
	layout := readImageLayout(t)
	src, ok := layout.files[layout.binary]
	stageName, built, _ := strings.Cut(src, ":")
	if !ok || built == "" {
		t.Fatalf("Dockerfile: %s is not copied from a build stage (%q)", layout.binary, src)
	}
	var build *dockerStage
	for i := range stages[:len(stages)-1] {
		if stages[i].name == stageName {
			build = &stages[i]
		}
	}
	if build == nil {
		t.Fatalf("Dockerfile: COPY --from=%s names no earlier stage", stageName)
	}

	// The Go image is at least the go directive of go.mod.
	gomod, err := os.ReadFile(filepath.Join(moduleRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(gomod))
	have := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(build.base)
	if want == nil || have == nil {
		t.Fatalf("build stage FROM %s: want golang:MAJOR.MINOR[...] (go.mod: %v)", build.base, want)
	}
	if vers := func(m []string) int { a, _ := strconv.Atoi(m[1]); b, _ := strconv.Atoi(m[2]); return a*1000 + b }; vers(have) < vers(want) {
		t.Fatalf("build stage FROM %s is older than go.mod's go %s.%s", build.base, want[1], want[2])
	}

	var line dockerInstr
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			line = in
		}
	}
	if line.cmd == "" {
		t.Fatal("Dockerfile: no RUN ... go build in the build stage")
	}
	words, err := shellWords(line.args)
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", line.line, err)
	}
	var env []string
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("Dockerfile:%d: %q is not `go build`", line.line, line.args)
	}
	out := filepath.Join(t.TempDir(), "supervise")
	args := append([]string(nil), words[1:]...)
	outSet := false
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) {
			if args[i+1] != built {
				t.Fatalf("Dockerfile:%d: builds %s but the final stage copies %s", line.line, args[i+1], built)
			}
			args[i+1], outSet = out, true
		}
	}
	if !outSet {
		t.Fatalf("Dockerfile:%d: no -o in %q", line.line, line.args)
	}
	if !contains(env, "CGO_ENABLED=0") || !contains(args, "-trimpath") {
		t.Fatalf("Dockerfile:%d: want CGO_ENABLED=0 and -trimpath in %q", line.line, line.args)
	}

	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot // the build context: COPY . . into the WORKDIR
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s with %v: %v\n%s", strings.Join(args, " "), env, err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary has a %v program header: not static", p.Type)
		}
	}
	// -s drops the symbol table, -w the DWARF sections. (Build info does
	// not record -ldflags under -trimpath, so the sections tell.)
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Fatalf("the binary has a %s section: -ldflags \"-s -w\" was not applied", s.Name)
		}
	}
	info, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Fatalf("build settings %v, want CGO_ENABLED=0 and -trimpath=true", settings)
	}
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil {
		t.Fatalf("the built binary: supervise version: %v\n%s", err, b)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestContainerConfig checks the configuration the image ships: valid as
// `supervise validate` sees it, and writing only below /tmp, the one
// writable path of a read-only root file system.
func TestContainerConfig(t *testing.T) {
	t.Parallel()
	l := readImageLayout(t)
	if r := runBin(t, 20*time.Second, "validate", "-c", l.configSrc); r.code != 0 {
		t.Fatalf("validate %s: %s", l.configSrc, r)
	}
	sv := l.config.Supervisor
	if !underTmp(sv.HeartbeatFile) {
		t.Fatalf("heartbeat_file %q: want a path under /tmp, so `supervise check` works read-only", sv.HeartbeatFile)
	}
	if sv.Socket != "" {
		t.Fatalf("socket = %q: the container config keeps the default socket", sv.Socket)
	}
	for _, p := range l.config.Programs {
		if p.Watchdog != nil && !underTmp(p.Watchdog.HeartbeatFile) {
			t.Fatalf("program %s: watchdog heartbeat_file %q is not under /tmp", p.Name, p.Watchdog.HeartbeatFile)
		}
	}
}

func underTmp(p string) bool { return strings.HasPrefix(path.Clean(p), "/tmp/") }

// The part of the Kubernetes Pod schema the example uses, with the API's
// field names: decoding with KnownFields refuses a misspelt key, which the
// API server would reject (or, for some clients, silently drop).
type k8sPod struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               *struct {
			RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
			RunAsUser      *int  `yaml:"runAsUser"`
			SeccompProfile *struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		InitContainers []k8sContainer `yaml:"initContainers"`
		Containers     []k8sContainer `yaml:"containers"`
		Volumes        []struct {
			Name     string `yaml:"name"`
			EmptyDir *struct {
				Medium    string `yaml:"medium"`
				SizeLimit string `yaml:"sizeLimit"`
			} `yaml:"emptyDir"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Ports         []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		RunAsGroup               *int  `yaml:"runAsGroup"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Exec *struct {
				Command []string `yaml:"command"`
			} `yaml:"exec"`
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

// preStopSeconds is how long a preStop hook may take before the stop
// signal: a sleep action, or an exec of `sleep N`.
func (c k8sContainer) preStopSeconds(t *testing.T) int {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0
	}
	ps := c.Lifecycle.PreStop
	if ps.Sleep != nil {
		return ps.Sleep.Seconds
	}
	if ps.Exec != nil && len(ps.Exec.Command) == 2 && path.Base(ps.Exec.Command[0]) == "sleep" {
		if n, err := strconv.Atoi(ps.Exec.Command[1]); err == nil {
			return n
		}
	}
	t.Fatalf("container %s: a preStop hook whose duration the test cannot bound: %+v", c.Name, ps)
	return 0
}

// TestKubernetesPodManifest decodes examples/kubernetes/pod.yaml and checks
// each pod's supervise container against the image layout: its probes run
// `supervise check` (liveness) and `supervise check --ready` (readiness),
// found on the image's PATH; it runs as the image's non-root user on a
// read-only root with an emptyDir on /tmp, where the shipped config writes;
// and the grace period exceeds shutdown_timeout plus any preStop hook.
func TestKubernetesPodManifest(t *testing.T) {
	t.Parallel()
	l := readImageLayout(t)
	data, err := os.ReadFile(examplePath("kubernetes/pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var pods []k8sPod
	for {
		var p k8sPod
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("pod.yaml document %d: %v", len(pods)+1, err)
		}
		pods = append(pods, p)
	}
	sidecars := 0
	for _, pod := range pods {
		name := pod.Metadata.Name
		if pod.APIVersion != "v1" || pod.Kind != "Pod" || name == "" {
			t.Fatalf("pod.yaml: %s/%s %q, want a named v1 Pod", pod.APIVersion, pod.Kind, name)
		}
		var sv *k8sContainer
		for i, c := range pod.Spec.Containers {
			if c.Name == "supervise" {
				sv = &pod.Spec.Containers[i]
			}
		}
		for i, c := range pod.Spec.InitContainers {
			if c.Name == "supervise" {
				if c.RestartPolicy != "Always" {
					t.Fatalf("pod %s: supervise as an init container needs restartPolicy: Always (a native sidecar), not %q", name, c.RestartPolicy)
				}
				sv = &pod.Spec.InitContainers[i]
				sidecars++
			}
		}
		if sv == nil {
			t.Fatalf("pod %s: no container named supervise", name)
		}
		checkSuperviseContainer(t, l, name, *sv)

		grace := 30 // the API's default
		if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		budget := l.config.Supervisor.ShutdownTimeout + time.Duration(sv.preStopSeconds(t))*time.Second
		if time.Duration(grace)*time.Second <= budget {
			t.Fatalf("pod %s: terminationGracePeriodSeconds %d is not above shutdown_timeout %s plus preStop", name, grace, l.config.Supervisor.ShutdownTimeout)
		}

		tmp := ""
		for _, m := range sv.VolumeMounts {
			if path.Clean(m.MountPath) == "/tmp" && !m.ReadOnly {
				tmp = m.Name
			}
		}
		emptyDir := false
		for _, v := range pod.Spec.Volumes {
			if v.Name == tmp && v.EmptyDir != nil {
				emptyDir = true
			}
		}
		if tmp == "" || !emptyDir {
			t.Fatalf("pod %s: supervise needs a writable emptyDir volume on /tmp (mount %q)", name, tmp)
		}

		// Every container of the pod is locked down the same way.
		for _, c := range append(append([]k8sContainer(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil || !isTrue(sc.RunAsNonRoot) || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Fatalf("pod %s container %s: want runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false", name, c.Name)
			}
		}
	}
	if len(pods) != 2 || sidecars != 1 {
		t.Fatalf("pod.yaml: %d pods, %d with supervise as a native sidecar; want supervise as the main container and as a sidecar", len(pods), sidecars)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func checkSuperviseContainer(t *testing.T, l *imageLayout, pod string, c k8sContainer) {
	t.Helper()
	if !strings.Contains(c.Image, "supervise") {
		t.Fatalf("pod %s: image %q is not the example image", pod, c.Image)
	}
	if len(c.Command) > 0 {
		if _, ok := l.resolve(c.Command[0]); !ok {
			t.Fatalf("pod %s: command %q is not in the image", pod, c.Command)
		}
	}
	probe := func(what string, p *k8sProbe, want ...string) {
		t.Helper()
		if p == nil || p.Exec == nil {
			t.Fatalf("pod %s: no exec %s probe", pod, what)
		}
		if strings.Join(p.Exec.Command, " ") != strings.Join(want, " ") {
			t.Fatalf("pod %s: %s probe runs %q, want %q", pod, what, p.Exec.Command, want)
		}
		if bin, ok := l.resolve(p.Exec.Command[0]); !ok || bin != l.binary {
			t.Fatalf("pod %s: %s probe's %s is not the image's %s", pod, what, p.Exec.Command[0], l.binary)
		}
		// The probe must outlast a slow `check` and come back before the
		// heartbeat is judged stale.
		if p.TimeoutSeconds < 2 {
			t.Fatalf("pod %s: %s probe timeoutSeconds %d, want at least 2", pod, what, p.TimeoutSeconds)
		}
	}
	probe("liveness", c.LivenessProbe, "supervise", "check")
	probe("readiness", c.ReadinessProbe, "supervise", "check", "--ready")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "supervise", "check", "--ready")
	}
	// The liveness probe gives the first heartbeat time to appear: the
	// file is written once the autostart programs are spawned.
	lp := c.LivenessProbe
	if window := time.Duration(lp.InitialDelaySeconds+lp.PeriodSeconds*lp.FailureThreshold) * time.Second; c.StartupProbe == nil && window < 3*l.config.Supervisor.HeartbeatInterval {
		t.Fatalf("pod %s: the liveness probe fails after %s, before `check` would (3 heartbeat intervals)", pod, window)
	}

	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != l.uid || (sc.RunAsGroup != nil && *sc.RunAsGroup != l.gid) {
		t.Fatalf("pod %s: supervise's runAsUser/runAsGroup differ from the image's USER %d:%d", pod, l.uid, l.gid)
	}
	if _, port, err := net.SplitHostPort(l.config.Supervisor.Metrics); err == nil && len(c.Ports) > 0 {
		if strconv.Itoa(c.Ports[0].ContainerPort) != port {
			t.Fatalf("pod %s: containerPort %d, but the config serves metrics on %s", pod, c.Ports[0].ContainerPort, l.config.Supervisor.Metrics)
		}
	}
}

// The part of the Nomad job specification the example uses.
type nomadFile struct {
	Job struct {
		Name  string `hcl:"name,label"`
		Type  string `hcl:"type,optional"`
		Group []struct {
			Name    string `hcl:"name,label"`
			Count   int    `hcl:"count,optional"`
			Network *struct {
				Ports []struct {
					Label  string `hcl:"label,label"`
					Static int    `hcl:"static,optional"`
				} `hcl:"port,block"`
			} `hcl:"network,block"`
			Task []struct {
				Name   string `hcl:"name,label"`
				Driver string `hcl:"driver"`
				User   string `hcl:"user,optional"`
				Config struct {
					Command string   `hcl:"command"`
					Args    []string `hcl:"args,optional"`
				} `hcl:"config,block"`
				KillSignal  string `hcl:"kill_signal,optional"`
				KillTimeout string `hcl:"kill_timeout,optional"`
				Template    []struct {
					Destination string `hcl:"destination"`
					ChangeMode  string `hcl:"change_mode,optional"`
					Data        string `hcl:"data"`
				} `hcl:"template,block"`
				Service []struct {
					Name     string `hcl:"name,optional"`
					Provider string `hcl:"provider,optional"`
					Port     string `hcl:"port,optional"`
					Check    []struct {
						Type     string `hcl:"type"`
						Path     string `hcl:"path,optional"`
						Interval string `hcl:"interval"`
						Timeout  string `hcl:"timeout"`
					} `hcl:"check,block"`
				} `hcl:"service,block"`
				Remain hcl.Body `hcl:",remain"`
			} `hcl:"task,block"`
			Remain hcl.Body `hcl:",remain"`
		} `hcl:"group,block"`
	} `hcl:"job,block"`
}

// TestNomadJob parses examples/nomad/supervise.nomad.hcl with the HCL
// library Nomad uses and checks its exec task: the config file it renders
// is valid for `supervise validate`, is the one the task runs, and its
// shutdown_timeout fits in kill_timeout; the health check asks /healthz on
// the port the config serves metrics on.
func TestNomadJob(t *testing.T) {
	t.Parallel()
	file := examplePath("nomad/supervise.nomad.hcl")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	// Nomad interpolates its runtime variables; inside the exec driver's
	// chroot the task directory is /local.
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"NOMAD_TASK_DIR": cty.StringVal("/local")}}
	var job nomadFile
	if diags := gohcl.DecodeBody(f.Body, ctx, &job); diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if job.Job.Type != "service" || len(job.Job.Group) != 1 || len(job.Job.Group[0].Task) != 1 {
		t.Fatalf("want a service job with one group of one task: %+v", job.Job)
	}
	g := job.Job.Group[0]
	task := g.Task[0]
	if task.Driver != "exec" || !path.IsAbs(task.Config.Command) || path.Base(task.Config.Command) != "supervise" {
		t.Fatalf("task %s: driver %q, command %q; want the exec driver running supervise by absolute path", task.Name, task.Driver, task.Config.Command)
	}
	if task.User == "" || task.User == "root" {
		t.Fatalf("task %s: user %q, want an unprivileged user", task.Name, task.User)
	}
	if len(task.Template) != 1 {
		t.Fatalf("task %s: %d templates, want the supervise config", task.Name, len(task.Template))
	}
	tpl := task.Template[0]
	rendered := path.Join("/local", strings.TrimPrefix(tpl.Destination, "local/"))
	args := task.Config.Args
	if !strings.HasPrefix(tpl.Destination, "local/") || len(args) != 3 || args[0] != "run" || args[1] != "-c" || args[2] != rendered {
		t.Fatalf("task %s: args %q do not run the rendered template %s (%s)", task.Name, args, tpl.Destination, rendered)
	}
	if strings.Contains(tpl.Data, "{{") {
		t.Fatal("the template uses Go template actions: the test cannot render it")
	}
	cfgFile := filepath.Join(t.TempDir(), "supervise.toml")
	if err := os.WriteFile(cfgFile, []byte(tpl.Data), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, 20*time.Second, "validate", "-c", cfgFile); r.code != 0 {
		t.Fatalf("validate of the job's config: %s\n%s", r, tpl.Data)
	}
	cfg, err := conf.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	kill, err := time.ParseDuration(task.KillTimeout)
	if err != nil || kill <= cfg.Supervisor.ShutdownTimeout || kill > 30*time.Second {
		t.Fatalf("task %s: kill_timeout %q, want above shutdown_timeout %s and within a client's default max_kill_timeout (30s)", task.Name, task.KillTimeout, cfg.Supervisor.ShutdownTimeout)
	}
	if task.KillSignal != "SIGTERM" {
		t.Fatalf("task %s: kill_signal %q, want SIGTERM", task.Name, task.KillSignal)
	}
	if !underTmp(cfg.Supervisor.HeartbeatFile) {
		t.Fatalf("heartbeat_file %q: want the task's /tmp", cfg.Supervisor.HeartbeatFile)
	}

	_, metricsPort, err := net.SplitHostPort(cfg.Supervisor.Metrics)
	if err != nil {
		t.Fatalf("the job's config serves no metrics (%q), which its health check needs", cfg.Supervisor.Metrics)
	}
	if len(task.Service) != 1 || len(task.Service[0].Check) != 1 {
		t.Fatalf("task %s: want one service with one check", task.Name)
	}
	svc := task.Service[0]
	if c := svc.Check[0]; c.Type != "http" || c.Path != "/healthz" {
		t.Fatalf("service %s: check %+v, want http on /healthz", svc.Name, c)
	}
	portOK := false
	if g.Network != nil {
		for _, p := range g.Network.Ports {
			if p.Label == svc.Port && strconv.Itoa(p.Static) == metricsPort {
				portOK = true
			}
		}
	}
	if !portOK {
		t.Fatalf("service %s: port %q is not a static port %s of the group's network", svc.Name, svc.Port, metricsPort)
	}
}

// TestSystemdUnitVerifies runs `systemd-analyze verify` on the shipped
// unit. verify insists that ExecStart's binary exists, so the test builds
// a private mount namespace in which a tmpfs over that directory holds the
// test binary; a control run without it must fail, which shows that verify
// really looked.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	unit := examplePath("supervise.service")
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = v
		}
	}
	start, reload := strings.Fields(keys["ExecStart"]), strings.Fields(keys["ExecReload"])
	if len(start) < 2 || !path.IsAbs(start[0]) || path.Base(start[0]) != "supervise" {
		t.Fatalf("ExecStart=%s: want an absolute path to supervise", keys["ExecStart"])
	}
	// ExecReload runs `supervise reload` with the same binary and file, so
	// that `systemctl reload` fails when the file is invalid.
	cfgArgs := func(argv []string) string {
		for i, a := range argv {
			if a == "-c" && i+1 < len(argv) {
				return argv[i+1]
			}
		}
		return ""
	}
	if len(reload) < 2 || reload[0] != start[0] || reload[1] != "reload" || cfgArgs(reload) != cfgArgs(start) {
		t.Fatalf("ExecReload=%s: want %s reload with ExecStart's -c %s", keys["ExecReload"], start[0], cfgArgs(start))
	}
	dir := path.Dir(start[0])
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("%s does not exist here to mount a tmpfs over: %v", dir, err)
	}
	prefix := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		prefix = append([]string{"--user", "--map-root-user"}, prefix...)
	}
	if out, err := exec.Command("unshare", append(append([]string(nil), prefix...), "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot make a private mount namespace here: %v\n%s", err, out)
	}
	verify := func(install bool) (string, error) {
		script := `mount -t tmpfs -o mode=0755 tmpfs "$1" || exit 100
if [ -n "$3" ]; then install -m 0755 "$3" "$2" || exit 100; fi
exec systemd-analyze verify "$4"`
		src := ""
		if install {
			src = bin
		}
		args := append(append([]string(nil), prefix...), "sh", "-c", script, "sh", dir, start[0], src, unit)
		cmd := exec.Command("unshare", args...)
		cmd.Env = childEnv()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 100 || err != nil && !errors.As(err, &ee) {
			t.Fatalf("setting up the private mount namespace: %v\n%s", err, out)
		}
		return string(out), err
	}
	out, err := verify(false)
	if err == nil || !strings.Contains(out, start[0]) {
		t.Fatalf("control run without %s: verify passed (%v) or did not name it:\n%s", start[0], err, out)
	}
	if out, err := verify(true); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}
