/*
 * A light probe for the start-up, idle and shutdown figures: the same
 * stamps and flags as tests/bench/probe (the subset those figures use), in C,
 * so that a program's own start costs microseconds instead of a Go runtime's
 * milliseconds and the figures show the supervisors rather than the probes.
 *
 * Flags: -stamps FILE, -id NAME, -live DURATION, -code N, -forever,
 * -exec-sleep, -notify-fd N, -gate FIFO (after the start stamp, wait until
 * the FIFO has a writer, so many programs begin their lives at once). Like the Go probe, it reads its flags from
 * $PROBE_ARGS_FILE, or from ./probe.args when it runs with no arguments or
 * as "run" (runit and s6 service directories).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int stampfd = -1;
static const char *id = "";

static long long mono(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* stamp appends one line with one write(2) on an O_APPEND file. */
static void stamp(const char *kind, long long ns) {
	char b[512];
	int n;
	if (stampfd < 0)
		return;
	n = snprintf(b, sizeof b, "%s %d %lld %s\n", kind, (int)getpid(), ns, id);
	if (n > 0 && n < (int)sizeof b && write(stampfd, b, (size_t)n) < 0)
		_exit(111);
}

static void fail(const char *what, const char *arg) {
	fprintf(stderr, "cprobe: %s %s\n", what, arg ? arg : "");
	_exit(111);
}

/* duration parses Go-style "1.5s", "100ms", "0s", "250us", "10ns". */
static long long duration(const char *s) {
	char *end;
	double v = strtod(s, &end);
	if (end == s)
		fail("bad duration", s);
	if (!strcmp(end, "ns")) return (long long)v;
	if (!strcmp(end, "us") || !strcmp(end, "µs")) return (long long)(v * 1e3);
	if (!strcmp(end, "ms")) return (long long)(v * 1e6);
	if (!strcmp(end, "s")) return (long long)(v * 1e9);
	if (!strcmp(end, "m")) return (long long)(v * 60e9);
	fail("bad duration", s);
	return 0;
}

int main(int argc, char **argv) {
	long long start = mono();
	static char file_buf[8192];
	char *av[256];
	int ac = 0, i;
	const char *base = strrchr(argv[0], '/');
	const char *file = getenv("PROBE_ARGS_FILE");
	const char *stamps = getenv("PROBE_STAMPS");
	long long live = -1;
	int code = 0, forever = 0, exec_sleep = 0, notify_fd = -1;
	const char *gate = NULL;
	sigset_t set;

	base = base ? base + 1 : argv[0];
	if (getenv("PROBE_ID"))
		id = getenv("PROBE_ID");
	if ((!file || !*file) && (argc == 1 || !strcmp(base, "run")) && access("probe.args", R_OK) == 0)
		file = "probe.args";
	if (file && *file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		ssize_t n;
		char *p, *save;
		if (fd < 0)
			fail("cannot open", file);
		n = read(fd, file_buf, sizeof file_buf - 1);
		close(fd);
		if (n < 0)
			fail("cannot read", file);
		file_buf[n] = 0;
		for (p = strtok_r(file_buf, " \t\r\n", &save); p && ac < 255; p = strtok_r(NULL, " \t\r\n", &save))
			av[ac++] = p;
	} else {
		for (i = 1; i < argc && ac < 255; i++)
			av[ac++] = argv[i];
	}
	for (i = 0; i < ac; i++) {
		const char *a = av[i];
		const char *next = i + 1 < ac ? av[i + 1] : NULL;
		if (!strcmp(a, "-stamps") && next) stamps = av[++i];
		else if (!strcmp(a, "-id") && next) id = av[++i];
		else if (!strcmp(a, "-live") && next) live = duration(av[++i]);
		else if (!strcmp(a, "-code") && next) code = atoi(av[++i]);
		else if (!strcmp(a, "-notify-fd") && next) notify_fd = atoi(av[++i]);
		else if (!strcmp(a, "-gate") && next) gate = av[++i];
		else if (!strcmp(a, "-forever")) forever = 1;
		else if (!strcmp(a, "-exec-sleep")) exec_sleep = 1;
		else fail("unsupported flag", a);
	}
	if (forever) {
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	if (stamps && *stamps) {
		stampfd = open(stamps, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (stampfd < 0)
			fail("cannot open", stamps);
	}
	stamp("start", start);
	if (notify_fd >= 0) {
		if (write(notify_fd, "\n", 1) < 0)
			fail("cannot notify", NULL);
		close(notify_fd);
	}
	if (gate) {
		/* Opening a FIFO for reading blocks until it has a writer. */
		int g = open(gate, O_RDONLY | O_CLOEXEC);
		if (g < 0)
			fail("cannot open", gate);
		close(g);
	}
	if (exec_sleep) {
		execl("/bin/sleep", "sleep", "infinity", (char *)NULL);
		fail("cannot exec", "/bin/sleep");
	}
	if (forever) {
		int sig;
		sigwait(&set, &sig);
		stamp("exit", mono());
		return 0;
	}
	if (live >= 0) {
		struct timespec ts = {live / 1000000000LL, live % 1000000000LL};
		while (nanosleep(&ts, &ts) < 0)
			;
		stamp("exit", mono());
		return code;
	}
	for (;;)
		pause();
}
