/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The service manager's notification protocol: READY=1 once the sandbox is
 * in place, STATUS= summaries, WATCHDOG=1 when WATCHDOG_USEC asks for it,
 * STOPPING=1.  Outside systemd every call is a no-op (sd_notify returns 0).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "internal.h"
#include "cprd.h"
#include "log.h"

/* At most every 100 ms; the sweep timer's tick (1 s) flushes what is left. */
#define NOTIFY_STATUS_NS 100000000u

void notify_status(void)
{
	static uint64_t last;
	uint64_t now = now_boottime_ns();
	char msg[256];

	if (now - last < NOTIFY_STATUS_NS)
		return;
	last = now;
	cprd.status_dirty = false;
	snprintf(msg, sizeof(msg), "STATUS=%u bundles, %u fds held, %u connections", cprd.n_bundles,
		 cprd.n_fds, cprd.n_conns);
	sd_notify(0, msg);
}

void notify_ready(void)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%u bundles, %u fds held, %u connections",
		 cprd.n_bundles, cprd.n_fds, cprd.n_conns);
	sd_notify(0, msg);
	cprd.status_dirty = false;
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

/* Ping at half the interval the manager asked for. */
int notify_watchdog_setup(void)
{
	struct itimerspec its = { 0 };
	uint64_t usec = 0, half;
	int r = sd_watchdog_enabled(0, &usec);

	if (r <= 0)
		return r;
	half = usec / 2 ? usec / 2 : 1;
	its.it_value.tv_sec = (time_t)(half / 1000000u);
	its.it_value.tv_nsec = (long)(half % 1000000u) * 1000;
	its.it_interval = its.it_value;
	if (timerfd_settime(cprd.watchdog_fd, 0, &its, NULL) < 0)
		return -errno;
	cprd.watchdog_usec = usec;
	log_info("watchdog every %llu us", (unsigned long long)half);
	return 1;
}

void notify_watchdog_event(void)
{
	uint64_t ticks;

	if (read(cprd.watchdog_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("watchdog timerfd");
	sd_notify(0, "WATCHDOG=1");
}
