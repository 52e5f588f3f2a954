package importer

import (
	"strings"
	"testing"
)

func sv(t *testing.T, text string) (*Result, string) {
	t.Helper()
	return convertOne(t, Supervisord, "supervisord.conf", text)
}

func TestSupervisordRestartPolicies(t *testing.T) {
	res, _ := sv(t, `
[program:a]
command=/bin/a
autorestart=true
[program:b]
command=/bin/b
autorestart=false
[program:c]
command=/bin/c
autorestart=unexpected
exitcodes=0,2,143
[program:d]
command=/bin/d
autorestart=Yes
exitcodes=
`)
	hasLines(t, res, "",
		"[programs.a]", `restart = "always"`,
		"[programs.b]", `restart = "never"`,
		"[programs.c]", `restart = "on-failure"`, "success_exit_codes = [0, 2, 143]",
		"[programs.d]", "success_exit_codes = []")
	noNotes(t, res)
}

func TestSupervisordTimesAndSignals(t *testing.T) {
	res, _ := sv(t, `
[program:a]
command=/bin/a
startsecs=10
startretries=0
stopsignal=hup
stopwaitsecs=90
[program:b]
command=/bin/b
startsecs=0
startretries=7
stopsignal=SIGUSR2
stopwaitsecs=0
[program:c]
command=/bin/c
stopsignal=9
`)
	hasLines(t, res, "",
		`min_uptime = "10s"`, `stop_signal = "HUP"`, `stop_timeout = "1m30s"`, "[programs.a.breaker]", "max_failures = 1",
		`min_uptime = "0s"`, `stop_signal = "USR2"`, `stop_timeout = "1s"`, "[programs.b.breaker]", "max_failures = 8",
		`stop_signal = "KILL"`,
		// supervisord's defaults, where they differ from supervise's.
		"[defaults]", `min_uptime = "1s"`, "[defaults.breaker]", "max_failures = 4",
		// Stops of the same priority, together: the longest, and 5s.
		"[supervisor]", `shutdown_timeout = "1m35s"`)
	hasNotes(t, res, "", "supervisord.conf:13: [program:b] stopwaitsecs: 0: supervise waits at least a moment")
}

// TestSupervisordPriority: supervisord stops high priorities first, and a
// group's priority orders its programs; supervise stops low
// stop_priority first.
func TestSupervisordPriority(t *testing.T) {
	res, _ := sv(t, `
[program:db]
command=/bin/db
priority=1
[program:web]
command=/bin/web
priority=500
[program:worker]
command=/bin/worker
priority=20
[program:other]
command=/bin/other
[group:app]
programs=web,worker
priority=100
`)
	hasLines(t, res, "",
		"[defaults]", "stop_priority = 0",
		"[programs.db]", "stop_priority = 998",
		"[programs.app-web]", "stop_priority = 899",
		"[programs.app-worker]", "stop_priority = 899")
	// Stopped first: other (0); then the group (899); db last (998).
	if !strings.Contains(string(res.TOML), "stop_priority = 999 - priority") {
		t.Errorf("the header does not explain priority:\n%s", res.TOML)
	}
	if strings.Contains(string(res.TOML), "[programs.other]\nstop_priority") {
		t.Errorf("other has the default priority, given by [defaults]")
	}
}

// TestSupervisordNoPriority: without priorities, no stop_priority at all.
func TestSupervisordNoPriority(t *testing.T) {
	res, _ := sv(t, "[program:a]\ncommand=/bin/a\n[program:b]\ncommand=/bin/b\npriority=999\n")
	lacks(t, res, "stop_priority")
	if strings.Contains(string(res.TOML), "- priority:") {
		t.Errorf("the header explains priorities nobody set:\n%s", res.TOML)
	}
}

func TestSupervisordGroups(t *testing.T) {
	res, dir := sv(t, `
[group:app]
programs=web, worker
[program:web]
command=/bin/web
[program:worker]
command=/bin/worker
[program:solo]
command=/bin/solo
`)
	hasLines(t, res, dir, "[programs.app-web]", "[programs.app-worker]", "[programs.solo]",
		"# [group:app] at $DIR/supervisord.conf:2: programs web, worker, named app-NAME here (supervisorctl's app:NAME).",
		"# [program:web] at $DIR/supervisord.conf:4, in [group:app]")
}

func TestSupervisordExpansions(t *testing.T) {
	res, dir := sv(t, `
[supervisord]
environment=GLOBAL="g1",TZ="UTC"

[program:web]
command=/srv/%(program_name)s/bin/run --tz %(ENV_TZ)s --home %(ENV_HOME)s 100%%
directory=%(here)s/%(group_name)s
environment=A="%(ENV_GLOBAL)s-x",B="%(program_name)s"
stdout_logfile=%(here)s/logs/%(program_name)s-%(ENV_A)s.log
stdout_logfile_maxbytes=0
`)
	hasLines(t, res, dir,
		`environment = { GLOBAL = "g1", TZ = "UTC" }`,
		// Values of the file are known; $HOME is read by the shell.
		`command = "exec /srv/web/bin/run --tz UTC --home \"${HOME}\" 100%"`,
		`directory = "$DIR/web"`,
		`environment = { A = "g1-x", B = "web" }`,
		`stdout = "$DIR/logs/web-g1-x.log"`)
	lacks(t, res, "log_max_size")
	noNotes(t, res)
}

// TestSupervisordEnvironmentFromTheSupervisor: a variable of supervisord's
// own environment in a program's environment is read by the command's
// shell; elsewhere it is the import's value, noted.
func TestSupervisordEnvironmentFromTheSupervisor(t *testing.T) {
	res, dir := sv(t, `
[program:web]
command=/opt/venv/bin/web
environment=PATH="/opt/venv/bin:%(ENV_PATH)s",MODE="fast"
user=%(ENV_HOME)s
`)
	hasLines(t, res, dir,
		`command = "export PATH=/opt/venv/bin:\"${PATH}\"; exec /opt/venv/bin/web"`,
		`environment = { MODE = "fast" }`,
		`user = "/home/app"`)
	hasNotes(t, res, dir, "supervisord.conf:5: [program:web] user: %(ENV_HOME)s is the value of $HOME when importing")
	if !strings.Contains(string(res.TOML), "# environment PATH (line 4) is set by the command's /bin/sh, which reads $PATH when the program starts.") {
		t.Errorf("no comment on PATH:\n%s", res.TOML)
	}
}

// TestSupervisordReplicas: numprocs → replicas, %(process_num) → {replica}
// where that is exact, /bin/sh printf where it is not.
func TestSupervisordReplicas(t *testing.T) {
	res, _ := sv(t, `
[program:web]
command=/bin/web --port 80%(process_num)02d --id %(process_num)d
process_name=%(program_name)s_%(process_num)02d
numprocs=4
environment=PORT="80%(process_num)02d"
stdout_logfile=/var/log/web.log

[program:many]
command=/bin/many --port 90%(process_num)02d
process_name=many-%(process_num)s
numprocs=12
environment=SLOT="%(process_num)02d"
directory=/srv/slot%(process_num)02d

[program:offset]
command=/bin/offset --n %(process_num)d
process_name=offset-%(process_num)d
numprocs=2
numprocs_start=5

[program:single]
command=/bin/single --n %(process_num)03d of %(numprocs)d
`)
	hasLines(t, res, "",
		"[programs.web]",
		`command = ["/bin/web", "--port", "800{replica}", "--id", "{replica}"]`,
		"replicas = 4",
		`environment = { PORT = "800{replica}" }`,
		`stdout = "/var/log/web-{replica}.log"`,
		"[programs.many]",
		`command = "export SLOT=\"$(printf '%02d' \"$SUPERVISE_REPLICA\")\"; exec /bin/many --port 90\"$(printf '%02d' \"$SUPERVISE_REPLICA\")\""`,
		"replicas = 12",
		`directory = "/srv/slot{replica}"`,
		"[programs.offset]",
		`command = "exec /bin/offset --n \"$((SUPERVISE_REPLICA + 5))\""`,
		"[programs.single]",
		`command = ["/bin/single", "--n", "000", "of", "1"]`)
	hasNotes(t, res, "",
		"[program:web] command: %(process_num)02d is written 0{replica}, since {replica} has no padding: the values are supervisord's for up to 10 instances (scaled to more, instance 10 would give 010 where supervisord gives 10)",
		"[program:web] process_name: not converted: supervise names a program after its table, and its instances web:0 ... web:3",
		"[program:web] environment: %(process_num)02d is written 0{replica}",
		"[program:web] stdout_logfile: every instance writes its own file in supervise: /var/log/web-{replica}.log",
		"[program:many] directory: %(process_num)02d pads the 12 indices to different widths; {replica} is not padded",
	)
	if !strings.Contains(string(res.TOML), "# %(process_num)02d in command (line 3) is written 0{replica}: {replica} is not padded, so this holds for up to 10 instances.") {
		t.Errorf("no comment on the padding:\n%s", res.TOML)
	}
}

func TestSupervisordLogs(t *testing.T) {
	res, _ := sv(t, `
[program:a]
command=/bin/a
stdout_logfile=/var/log/a.out
stderr_logfile=/var/log/a.err
[program:b]
command=/bin/b
stdout_logfile=/var/log/b.log
stdout_logfile_maxbytes=1GB
stdout_logfile_backups=0
redirect_stderr=true
[program:c]
command=/bin/c
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
[program:d]
command=/bin/d
stdout_logfile=NONE
stderr_logfile=/dev/stderr
[program:e]
command=/bin/e
stdout_logfile=AUTO
stderr_logfile=/var/log/e.err
stderr_logfile_maxbytes=1500
stderr_logfile_backups=2
`)
	hasLines(t, res, "",
		"[programs.a]", `stdout = "/var/log/a.out"`, `stderr = "/var/log/a.err"`, `log_max_size = "50MB"`, "log_max_files = 10",
		"[programs.b]", `stdout = "/var/log/b.log"`, `stderr = "/var/log/b.log"`, `log_max_size = "1GB"`, "log_max_files = 0",
		"[programs.c]", `stdout = "inherit"`, `stderr = "/dev/stdout"`,
		"[programs.d]", `stdout = "null"`, `stderr = "inherit"`,
		"[programs.e]", `stderr = "/var/log/e.err"`, "log_max_size = 1500", "log_max_files = 2")
	noNotes(t, res)
}

func TestSupervisordNotConverted(t *testing.T) {
	res, dir := sv(t, `[unix_http_server]
file=/run/supervisor.sock
[inet_http_server]
port=127.0.0.1:9001
[supervisord]
logfile=/var/log/supervisord.log
minfds=4096
nodaemon=false
loglevel=blather
[program:web]
command=/bin/web
umask=022
serverurl=AUTO
stdout_events_enabled=true
stdout_capture_maxbytes=1MB
stdout_syslog=true
comand=/bin/typo
stopasgroup=true
killasgroup=true
[eventlistener:crashmail]
command=crashmail
[fcgi-program:php]
command=php-cgi
[something]
k=v
`)
	hasNotes(t, res, dir,
		"$DIR/supervisord.conf:1: [unix_http_server]: not converted",
		"$DIR/supervisord.conf:3: [inet_http_server]: not converted: supervise has no web interface",
		"$DIR/supervisord.conf:6: [supervisord] logfile: not converted",
		"$DIR/supervisord.conf:7: [supervisord] minfds: not converted",
		"$DIR/supervisord.conf:8: [supervisord] nodaemon: supervise does not daemonize",
		"$DIR/supervisord.conf:9: [supervisord] loglevel: supervise has no level \"blather\": \"debug\" is the nearest",
		"$DIR/supervisord.conf:12: [program:web] umask: not converted: supervise sets no umask",
		"$DIR/supervisord.conf:13: [program:web] serverurl: not converted",
		"$DIR/supervisord.conf:14: [program:web] stdout_events_enabled: not converted",
		"$DIR/supervisord.conf:15: [program:web] stdout_capture_maxbytes: not converted",
		"$DIR/supervisord.conf:16: [program:web] stdout_syslog: not converted",
		"$DIR/supervisord.conf:17: [program:web] comand: not a supervisord setting: ignored",
		"$DIR/supervisord.conf:20: [eventlistener:crashmail]: not converted: run its command from a hook instead, [hooks.crashmail] with the events it wants (SPEC §15)",
		"$DIR/supervisord.conf:22: [fcgi-program:php]: not converted",
		"$DIR/supervisord.conf:24: [something]: not a supervisord section: ignored")
	hasLines(t, res, "", `log_level = "debug"`, "# stopasgroup (line 18): supervise always signals the process group.")
}

func TestSupervisordInclude(t *testing.T) {
	res, dir, err := convertFiles(t, Supervisord, "supervisord.conf", map[string]string{
		"supervisord.conf":    "[include]\nfiles = conf.d/*.conf extra/[!x]*.ini /nonexistent/*.conf\n[program:main]\ncommand=%(here)s/main\n",
		"conf.d/b.conf":       "[program:b]\ncommand=%(here)s/b\n[include]\nfiles=../never/*.conf\n",
		"conf.d/a.conf":       "[program:a]\ncommand=%(here)s/a\n[program:main]\nautostart=false\n",
		"conf.d/.hidden.conf": "[program:hidden]\ncommand=/bin/hidden\n",
		"extra/y.ini":         "[program:y]\ncommand=/bin/y\n",
		"extra/x.ini":         "[program:x]\ncommand=/bin/x\n",
		"never/n.conf":        "[program:n]\ncommand=/bin/n\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, res.TOML)
	want := []string{dir + "/supervisord.conf", dir + "/conf.d/a.conf", dir + "/conf.d/b.conf", dir + "/extra/y.ini"}
	if strings.Join(res.Files, " ") != strings.Join(want, " ") {
		t.Errorf("files %q, want %q", res.Files, want)
	}
	hasLines(t, res, dir,
		"[programs.main]", `command = ["$DIR/main"]`, "autostart = false",
		"[programs.a]", `command = ["$DIR/conf.d/a"]`,
		"[programs.b]", `command = ["$DIR/conf.d/b"]`,
		"[programs.y]")
	lacks(t, res, "[programs.hidden]", "[programs.x]", "[programs.n]")
	hasNotes(t, res, dir,
		"$DIR/supervisord.conf:2: [include] files: no file matches \"/nonexistent/*.conf\"",
		"$DIR/conf.d/b.conf:3: [include]: in an included file: not followed")
	if !strings.Contains(string(res.TOML), "autostart (conf.d/a.conf:4)") && !strings.Contains(string(res.TOML), "autostart ("+dir+"/conf.d/a.conf:4)") {
		t.Errorf("a key from another file does not name it:\n%s", res.TOML)
	}
}

// TestSupervisordDefaultSection: [DEFAULT] keys apply to every section,
// as configparser gives them.
func TestSupervisordDefaultSection(t *testing.T) {
	res, _ := sv(t, "[DEFAULT]\nautorestart=true\nstartsecs=3\n[program:a]\ncommand=/bin/a\n[program:b]\ncommand=/bin/b\nstartsecs=7\n")
	hasLines(t, res, "", "[programs.a]", `restart = "always"`, `min_uptime = "3s"`,
		"[programs.b]", `min_uptime = "7s"`)
}

// TestSupervisordRefused: what supervisord itself refuses is an error
// with the file and line.
func TestSupervisordRefused(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"[program:a]\ncommand=/bin/a\n  bad continuation is fine\nnot a line\n", "$DIR/supervisord.conf:4: not a [section] header, a key = value line or an indented continuation: \"not a line\""},
		{"command=/bin/a\n", "$DIR/supervisord.conf:1: a key before the first [section] header"},
		{"[program:a]\nautostart=1\n", "$DIR/supervisord.conf:1: [program:a] does not specify a command (supervisord refuses this)"},
		{"[program:a]\ncommand=/bin/a %(nope)s\n", "$DIR/supervisord.conf:2: [program:a] command: \"/bin/a %(nope)s\": %(nope)s: supervisord has no value named \"nope\" here"},
		{"[program:a]\ncommand=/bin/a 100%\n", "$DIR/supervisord.conf:2: [program:a] command: \"/bin/a 100%\": incomplete format (a lone %: write %% for a percent sign)"},
		{"[program:a]\ncommand=/bin/a \"unterminated\n", "$DIR/supervisord.conf:2: [program:a] command: cannot split the command as supervisord does: no closing quotation"},
		{"[program:a]\ncommand=/bin/a\nnumprocs=2\n", "$DIR/supervisord.conf:3: [program:a] numprocs: numprocs = 2 needs %(process_num) in process_name (supervisord refuses this)"},
		{"[program:a]\ncommand=/bin/a\nstopasgroup=true\nkillasgroup=false\n", "$DIR/supervisord.conf:4: [program:a] killasgroup: stopasgroup = true with killasgroup = false (supervisord refuses this)"},
		{"[program:a]\ncommand=/bin/a\nautorestart=sometimes\n", "$DIR/supervisord.conf:3: [program:a] autorestart: \"sometimes\" is not true, false or unexpected"},
		{"[program:a]\ncommand=/bin/a\nstartsecs=soon\n", "$DIR/supervisord.conf:3: [program:a] startsecs: \"soon\" is not an integer"},
		{"[program:a]\ncommand=/bin/a\nstopsignal=NOPE\n", "$DIR/supervisord.conf:3: [program:a] stopsignal: unknown signal: \"NOPE\""},
		{"[program:a]\ncommand=/bin/a\nexitcodes=0,256\n", "$DIR/supervisord.conf:3: [program:a] exitcodes: \"0,256\" is not a list of exit codes from 0 to 255"},
		{"[program:a]\ncommand=/bin/a\nenvironment=A=b$c\n", "$DIR/supervisord.conf:3: [program:a] environment: not a list of KEY=value pairs separated by commas (quote values that hold other characters than letters, digits and _/.+-():)"},
		{"[program:a]\ncommand=/bin/a\nstdout_logfile_maxbytes=big\n", "$DIR/supervisord.conf:3: [program:a] stdout_logfile_maxbytes: \"big\" is not a size (a number of bytes, or with KB, MB or GB)"},
		{"[program:a b]\ncommand=/bin/a\n", "$DIR/supervisord.conf:1: [program:a b]: invalid name \"a b\": supervisord refuses the character ' ' in a name"},
		{"[group:g]\nprograms=a,missing\n[program:a]\ncommand=/bin/a\n", "$DIR/supervisord.conf:2: [group:g] programs: names \"missing\", which is no [program:missing] (supervisord refuses this file)"},
		{"[include]\n", "$DIR/supervisord.conf:1: [include] has no files setting"},
		{"[program:a]\ncommand=\n", "$DIR/supervisord.conf:2: [program:a] command: the command is empty"},
	} {
		_, dir, err := convertFiles(t, Supervisord, "supervisord.conf", map[string]string{"supervisord.conf": c.text})
		errorIs(t, err, dir, c.want)
	}
}

// TestSupervisordIncludedFileError names the included file.
func TestSupervisordIncludedFileError(t *testing.T) {
	_, dir, err := convertFiles(t, Supervisord, "supervisord.conf", map[string]string{
		"supervisord.conf": "[include]\nfiles=conf.d/*.conf\n",
		"conf.d/bad.conf":  "[program:a]\ncommand=/bin/a\n!!\n",
	})
	errorIs(t, err, dir, "$DIR/conf.d/bad.conf:3: not a [section] header, a key = value line or an indented continuation: \"!!\"")
}

// TestSupervisordNames: supervise's names are made of what it accepts,
// and stay unique.
func TestSupervisordNames(t *testing.T) {
	res, _ := sv(t, "[program:web@1]\ncommand=/bin/a\n[program:web_1]\ncommand=/bin/b\n")
	hasLines(t, res, "", "[programs.web_1]", "[programs.web_1-2]")
	hasNotes(t, res, "", "[program:web@1]: named web_1 here", "[program:web_1]: named web_1-2 here: web_1 is already the name of [program:web@1]")
}
