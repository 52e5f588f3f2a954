/*
 * The floor of the heartbeat-cost figure: the least a reader of heartbeat
 * events does per beat, in C. It watches one directory with inotify, waits
 * in epoll (edge-triggered, as Go's poller), reads until EAGAIN and stats
 * every file named in an event, until it is killed. Measured in the same
 * window as the supervisor on the same directory, it shows what one wakeup
 * costs on the machine.
 *
 *   inofloor DIR
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char buf[65536], path[4096];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
	int fd, ep;
	if (argc != 2) {
		fprintf(stderr, "usage: inofloor DIR\n");
		return 2;
	}
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, argv[1], IN_ATTRIB | IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
		perror("inofloor: inotify");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = fd;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("inofloor: epoll");
		return 1;
	}
	for (;;) {
		struct epoll_event got;
		if (epoll_wait(ep, &got, 1, -1) < 1)
			continue;
		for (;;) {
			ssize_t n = read(fd, buf, sizeof buf);
			char *p;
			if (n <= 0)
				break;
			for (p = buf; p < buf + n;) {
				struct inotify_event *ie = (struct inotify_event *)p;
				struct stat st;
				if (ie->len > 0 && snprintf(path, sizeof path, "%s/%s", argv[1], ie->name) < (int)sizeof path)
					(void)stat(path, &st);
				p += sizeof *ie + ie->len;
			}
		}
	}
}
