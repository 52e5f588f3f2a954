package importer

import (
	"strings"
	"testing"
)

func pc(t *testing.T, text string) (*Result, string) {
	t.Helper()
	return convertOne(t, ProcessCompose, "process-compose.yaml", text)
}

func TestComposeConditions(t *testing.T) {
	res, dir := pc(t, `
processes:
  db:
    command: db
    readiness_probe:
      exec:
        command: pg_isready
  logger:
    command: logger
    ready_log_line: "listening on :80 (ready)"
  migrate:
    command: migrate
  seed:
    command: seed
  web:
    command: web
    depends_on:
      db:
        condition: process_healthy
      migrate:
        condition: process_completed_successfully
      seed:
        condition: process_completed
      logger:
        condition: process_log_ready
  worker:
    command: worker
    depends_on:
      db:
        condition: process_healthy
      logger: {}
  cron:
    command: cron
    depends_on:
      db:
        condition: process_started
      ghost:
        condition: process_started
`)
	hasLines(t, res, dir,
		"[programs.logger.readiness]", `log_line = "listening on :80 \\(ready\\)"`,
		"[programs.web]", `depends_on = { db = "ready", logger = "ready", migrate = "completed", seed = "completed" }`,
		// No condition is process-compose's process_completed.
		"[programs.worker]", `depends_on = { db = "ready", logger = "completed" }`,
		"[programs.cron]", `depends_on = { db = "started" }`)
	hasNotes(t, res, dir,
		"processes.web.depends_on.seed: process_completed: supervise's completed waits for a successful end",
		"processes.worker.depends_on.logger: process_completed",
		"processes.cron.depends_on.ghost: no process ghost: not converted")
}

// TestComposeReadyList: when every condition is readiness, depends_on is
// the plain list.
func TestComposeReadyList(t *testing.T) {
	res, _ := pc(t, "processes:\n  a:\n    command: a\n    readiness_probe:\n      http_get:\n        port: 8080\n  b:\n    command: b\n  web:\n    command: web\n    depends_on:\n      b: {condition: process_healthy}\n      a: {condition: process_healthy}\n")
	hasLines(t, res, "", `depends_on = ["a", "b"]`, `http = "http://127.0.0.1:8080/"`)
	hasNotes(t, res, "", "processes.web.depends_on.b: process_healthy, but b has no probe")
}

func TestComposeProbes(t *testing.T) {
	res, dir := pc(t, `
shell:
  shell_command: sh
processes:
  api:
    command: ./api
    working_dir: ./srv
    readiness_probe:
      http_get:
        host: localhost
        scheme: https
        path: /ready?full=1
        port: 8443
        headers:
          X-Probe: "1"
      initial_delay_seconds: 5
      period_seconds: 2
      timeout_seconds: 3
      success_threshold: 2
      failure_threshold: 4
    liveness_probe:
      exec:
        command: ./check
        working_dir: ./srv
      period_seconds: 0
  bare:
    command: bare
    liveness_probe:
      exec:
        command: ./check --deep
`)
	hasLines(t, res, dir,
		`command = ["sh", "-c", "./api"]`, `directory = "$DIR/srv"`,
		"[programs.api.readiness]", `http = "https://localhost:8443/ready?full=1"`, `interval = "2s"`, `timeout = "3s"`,
		`initial_delay = "5s"`, "success_threshold = 1", "failure_threshold = 4",
		// The probe's working_dir is the program's: no cd.
		"[programs.api.liveness]", `exec = ["sh", "-c", "./check"]`, `interval = "10s"`, `timeout = "1s"`, `action = "log"`,
		// A probe without working_dir runs in process-compose's directory,
		// which is the program's here.
		"[programs.bare.liveness]", `exec = ["sh", "-c", "./check --deep"]`)
	hasNotes(t, res, dir,
		"processes.api.readiness_probe: when it fails failure_threshold times in a row, process-compose stops the process",
		"processes.api.readiness_probe.http_get.headers: not converted",
		"processes.api.readiness_probe.success_threshold: 2: process-compose does not use it")
}

// TestComposeProbeDirectory: an exec probe without working_dir runs in
// process-compose's directory, not the program's.
func TestComposeProbeDirectory(t *testing.T) {
	res, dir := pc(t, "processes:\n  api:\n    command: ./api\n    working_dir: /srv/api\n    readiness_probe:\n      exec:\n        command: ./bin/ready\n")
	hasLines(t, res, dir, `exec = ["bash", "-c", "cd $DIR && ./bin/ready"]`)
}

func TestComposeAvailability(t *testing.T) {
	res, _ := pc(t, `
processes:
  always:
    command: a
    availability:
      restart: always
      backoff_seconds: 5
      max_restarts: 2
  failing:
    command: b
    availability:
      restart: exit_on_failure
  ends:
    command: c
    availability:
      restart: always
      exit_on_end: true
  no:
    command: d
    availability:
      restart: "no"
`)
	hasLines(t, res, "",
		"[defaults]", `restart = "never"`, `backoff_initial = "1s"`, `backoff_max = "1s"`,
		"[programs.always]", `restart = "always"`, `backoff_initial = "5s"`, `backoff_max = "5s"`, "[programs.always.breaker]", "max_failures = 3",
		"[programs.failing]", `restart = "on-failure"`, "critical = true", "[programs.failing.breaker]", "max_failures = 1",
		"[programs.ends]", `restart = "never"`, "critical = true",
		"[programs.no]", `restart = "never"`)
	lacks(t, res, "[programs.ends.breaker]")
	hasNotes(t, res, "", "processes.always.availability.max_restarts: 2: supervise's breaker opens after 3 failures in a row",
		"processes.ends.availability.exit_on_end: with restart \"always\": the first end stops everything")
}

func TestComposeShutdownAndLogs(t *testing.T) {
	res, dir := pc(t, `
processes:
  web:
    command: web
    replicas: 3
    shutdown:
      signal: 3
      timeout_seconds: 45
      command: web --drain
      parent_only: true
    log_location: logs/web.log
  worker:
    command: worker --id {{.PC_REPLICA_NUM}}
    replicas: 2
    log_location: /var/log/worker-{PC_REPLICA_NUM}.log
  odd:
    command: odd
    shutdown:
      signal: 99
`)
	hasLines(t, res, dir,
		"[supervisor]", `shutdown_timeout = "50s"`,
		"[programs.web]", "replicas = 3", `stop_signal = "QUIT"`, `stop_timeout = "45s"`,
		`stdout = "$DIR/logs/web.log.{replica}"`, `stderr = "$DIR/logs/web.log.{replica}"`,
		"[programs.worker]", `command = ["bash", "-c", "worker --id {replica}"]`, `stdout = "/var/log/worker-{replica}.log"`,
		`environment = { PC_REPLICA_NUM = "{replica}" }`,
		"[programs.odd]", `stop_signal = "TERM"`)
	hasNotes(t, res, dir, "processes.web.shutdown.command: not converted", "processes.web.shutdown.parent_only: not converted")
}

func TestComposeVariables(t *testing.T) {
	res, dir := pc(t, `
environment:
  - "LEVEL=debug"
vars:
  NAME: shop
processes:
  web:
    command: web --level $LEVEL --home $HOME --cost $$5 --name {{.NAME}}-{{.OWN}}
    vars:
      OWN: front
    environment:
      - "HOME_DIR=${HOME}/data"
      - "MISSING=${NOPE:-fallback}"
      - "KEEP=$${LITERAL}"
    working_dir: $HOME/{{.NAME}}
  raw:
    command: raw {{.NAME}}
    is_template_disabled: true
`)
	hasLines(t, res, dir,
		`command = ["bash", "-c", "web --level $LEVEL --home $HOME --cost $5 --name shop-front"]`,
		`environment = { HOME_DIR = "/home/app/data", KEEP = "${LITERAL}", MISSING = "fallback" }`,
		`directory = "/home/app/shop"`,
		`command = ["bash", "-c", "raw {{.NAME}}"]`)
	hasNotes(t, res, dir,
		"processes.web.command: $LEVEL is set by environment, which the shell sees when the program starts",
		`processes.web.environment: ${HOME} is "/home/app", its value when importing`,
		`processes.web.environment: ${NOPE:-fallback} is "fallback"`,
		`processes.web.working_dir: $HOME is "/home/app"`)
}

func TestComposeDisableExpansion(t *testing.T) {
	res, _ := pc(t, "disable_env_expansion: true\nprocesses:\n  a:\n    command: a $$HOME\n    working_dir: /srv/$HOME\n")
	hasLines(t, res, "", `command = ["bash", "-c", "a $$HOME"]`, `directory = "/srv/$HOME"`)
	noNotes(t, res)
}

func TestComposeMiscellany(t *testing.T) {
	res, dir := pc(t, `
version: "0.5"
name: shop
is_strict: true
log_location: /tmp/pc.log
log_level: debug
x-common: &common
  availability:
    restart: on_failure
processes:
  entry:
    <<: *common
    entrypoint: ["/usr/bin/env", "python3", "-m", "app"]
    env_file: app.env
    working_dir: /srv/app
    success_exit_codes: [3, 0, 3]
    disabled: true
    description: The application
    namespace: backend
    is_daemon: true
    x-owner: team
    unknown_key: 1
  both:
    command: a
    entrypoint: [b]
    is_dotenv_disabled: true
`)
	hasLines(t, res, dir,
		`log_level = "debug"`,
		"# Project shop.",
		"[programs.entry]", `command = ["/usr/bin/env", "python3", "-m", "app"]`, `restart = "on-failure"`,
		`env_file = ["-$DIR/.env", "-/srv/app/app.env"]`, "success_exit_codes = [0, 3]", "autostart = false",
		"# The application", "# namespace backend",
		"[programs.both]", `command = ["bash", "-c", "a"]`, "env_file = []")
	hasNotes(t, res, dir,
		"process-compose.yaml:5: log_location: not converted",
		"processes.entry.is_daemon: not converted",
		"processes.entry.unknown_key: not a process-compose setting: ignored",
		"processes.both.entrypoint: ignored, as process-compose ignores it when command is set")
	for _, n := range res.Notes {
		if strings.Contains(n.Setting, "x-") {
			t.Errorf("an extension is noted: %s", n)
		}
	}
}

func TestComposeRefused(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"processes:\n  a:\n    command: [a\n", "$DIR/process-compose.yaml:2: did not find expected ',' or ']'"},
		{"version: 1\n", "$DIR/process-compose.yaml:1: no processes mapping"},
		{"processes:\n  a:\n    working_dir: /x\n", "$DIR/process-compose.yaml:2: processes.a: no command or entrypoint"},
		{"processes:\n  a:\n    command: a\n    replicas: many\n", "$DIR/process-compose.yaml:4: processes.a.replicas: expected an integer, got str \"many\""},
		{"processes:\n  a:\n    command: a\n    availability:\n      restart: sometimes\n", "$DIR/process-compose.yaml:5: processes.a.availability.restart: \"sometimes\" is not always, on_failure, exit_on_failure or no"},
		{"processes:\n  a:\n    command: a\n    depends_on:\n      b:\n        condition: process_ready\n  b:\n    command: b\n", "$DIR/process-compose.yaml:6: processes.a.depends_on.b.condition: \"process_ready\" is not a process-compose condition"},
		{"processes:\n  a b:\n    command: a\n", "$DIR/process-compose.yaml:2: processes.a b: supervise names use letters, digits, '_', '.' and '-'"},
		{"processes:\n  a:\n    command: a {{range 10}}x{{end}}\n", "$DIR/process-compose.yaml:3: processes.a.command: template: only values, conditions and printf are converted (no range, with, define or template)"},
		{"processes:\n  a:\n    command: a {{.X\n", "$DIR/process-compose.yaml:3: processes.a.command: template: template: :1: unclosed action"},
		{"processes:\n  a:\n    command: a\n    environment: {A: 1}\n", "$DIR/process-compose.yaml:4: processes.a.environment: expected a list, got a mapping"},
		{"processes:\n  a:\n    command: a\n  a:\n    command: b\n", "$DIR/process-compose.yaml:4: processes: key \"a\" is given twice"},
	} {
		_, dir, err := convertFiles(t, ProcessCompose, "process-compose.yaml", map[string]string{"process-compose.yaml": c.text})
		errorIs(t, err, dir, c.want)
	}
}

func TestProcfile(t *testing.T) {
	res, dir := convertOne(t, Procfile, "Procfile", "# comment\n\nweb: bundle exec puma -p $PORT\r\nworker:   bundle exec sidekiq # trailing\nrelease: rake db:migrate\n")
	hasLines(t, res, dir,
		"[defaults]", `directory = "$DIR"`, `env_file = ["-$DIR/.env"]`, `restart = "always"`,
		"[programs.web]", `command = "bundle exec puma -p $PORT"`, `environment = { PORT = "5000" }`,
		"[programs.worker]", `command = "bundle exec sidekiq # trailing"`, `environment = { PORT = "5100" }`,
		"[programs.release]", `environment = { PORT = "5200" }`)
	hasNotes(t, res, dir, "$DIR/Procfile:5: release: Heroku runs it once")
	if !strings.Contains(string(res.TOML), "# PORT: foreman and honcho give each process type its own port") {
		t.Errorf("the PORT convention is not documented:\n%s", res.TOML)
	}
}

func TestProcfileEmpty(t *testing.T) {
	res, _ := convertOne(t, Procfile, "Procfile", "# nothing yet\n")
	hasLines(t, res, "", "[supervisor]")
}

func TestProcfileRefused(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"web: a\n  indented: b\n", "$DIR/Procfile:2: not a \"name: command\" line (a name of letters, digits, '_' and '-' at the start of the line): \"indented: b\""},
		{"web: a\nweb: b\n", "$DIR/Procfile:2: process type \"web\" is already defined at line 1"},
		{"web:\n", "$DIR/Procfile:1: process type \"web\" has no command"},
		{"web.1: a\n", "$DIR/Procfile:1: not a \"name: command\" line (a name of letters, digits, '_' and '-' at the start of the line): \"web.1: a\""},
		{"web: a\n\xff\n", "$DIR/Procfile:2: not UTF-8 text"},
	} {
		_, dir, err := convertFiles(t, Procfile, "Procfile", map[string]string{"Procfile": c.text})
		errorIs(t, err, dir, c.want)
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		text string
		want Format
	}{
		{"; supervisord\n[supervisord]\n", Supervisord},
		{"\n# conf.d file\n[program:web]\ncommand=/bin/web\n", Supervisord},
		{"[DEFAULT]\nx=1\n", Supervisord},
		{"version: '0.5'\nprocesses:\n  web:\n    command: web\n", ProcessCompose},
		{"processes: {}\n", ProcessCompose},
		{"web: bundle exec puma\nworker: sidekiq\n", Procfile},
		{"# Procfile\nweb: sh -c 'a: b'\n", Procfile},
		{"processes: web\n", Procfile},
		{"", ""},
		{"just some text\n", ""},
		{"- a\n- b\n", ""},
	} {
		got, err := Detect([]byte(c.text))
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("Detect(%q) = %q, %v; want %q", c.text, got, err, c.want)
		}
	}
}

// TestConvertDetects: without a format, the content decides.
func TestConvertDetects(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       Format
	}{
		{"whatever.txt", "[program:a]\ncommand=/bin/a\n", Supervisord},
		{"x.yml", "processes:\n  a:\n    command: a\n", ProcessCompose},
		{"Procfile.dev", "a: run\n", Procfile},
	} {
		res, _, err := convertFiles(t, "", c.name, map[string]string{c.name: c.text})
		if err != nil || res.Format != c.want {
			t.Errorf("%s: %v, format %v; want %s", c.name, err, res, c.want)
		}
	}
	_, dir, err := convertFiles(t, "", "notes.txt", map[string]string{"notes.txt": "hello\n"})
	errorIs(t, err, dir, "$DIR/notes.txt: cannot tell the format: not a supervisord file ([program:x] sections), a process-compose file (a YAML processes: mapping) or a Procfile (name: command lines); use --format")
}
