/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VMM process: options, the libcpr context, the machine, the hand-off. */
#ifndef MINIVMM_VMM_H
#define MINIVMM_VMM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <cpr/cpr.h>

#include "minivmm.h"
#include "record.h"
#include "vfio.h"

#define RAM_IDSTR "pc.ram"
#define FD_CONTROL "minivmm.control"
#define FD_REPLY "minivmm.reply"
#define FD_KEEPER "minivmm.keeper"
#define MAX_CYCLE 16u
/* Largest vCPU-state message a transfer receiver accepts. */
#define VCPU_MSG_MAX (64u << 10)

/* Exit codes (minivmm(1)). */
#define EXIT_REFUSED 1
#define EXIT_USAGE 100
#define EXIT_TEMP 111

struct options {
	uint64_t ram_size;
	unsigned n_vcpus;
	bool hugepages;
	bool no_kvm;
	bool quiet;
	bool verify_ram;
	bool rt;	    /* SCHED_FIFO during the pause */
	uint64_t boot_slot; /* 0: GUEST_BOOT_SLOT_SIZE */
	unsigned slot_delay_ms;
	const char *control_path;
	enum upgrade_mode mode;		    /* for SIGUSR1 */
	enum upgrade_mode cycle[MAX_CYCLE]; /* for --upgrade-every */
	unsigned n_cycle;
	double upgrade_every;
	unsigned max_upgrades; /* 0 = no limit */
	double exit_after;     /* after the last upgrade; < 0 = never */
	const char *upgrade_to;
	uint32_t target_level;
	unsigned block_modes; /* CPR_MODE_* or'ed */
	const char *run_dir;
	const char *cprd_socket;
	/* A passthrough device (vfio.c): cdev + iommufd, or group + type1. */
	const char *vfio_cdev;
	const char *vfio_group;
	const char *incoming_transfer; /* internal: socket of the old image */
	const char *incoming_cprd;     /* internal: bundle name and socket */
	const char *incoming_kexec;    /* the bundle to resume after a kexec */
	const char *kexec_bundle;      /* the bundle's name in the kexec mode */
	const char *kexec_append;      /* the next kernel's command line, checked */
};

/* What a hand-off measured, as the new image reports it. */
struct upgrade_report {
	struct rec_pause pause;
	uint64_t t_main;      /* new image's main() */
	uint64_t t_ram;	      /* RAM adopted */
	uint64_t t_vm;	      /* VM, vCPUs, memslots built */
	uint64_t t_recv;      /* transfer: vCPU state received */
	uint64_t t_first_run; /* first vCPU ran the guest here */
	uint64_t t_last_run;
	bool prepared;				 /* VM was built before the pause */
	uint64_t counters_adopted[VM_MAX_VCPUS]; /* in RAM before the first run */
	uint64_t counters_after[VM_MAX_VCPUS];	 /* after a heartbeat here */
	int check;
	char check_msg[256];
};

struct vmm {
	struct options opt;
	int argc;
	char **argv;
	char self[PATH_MAX]; /* this binary, resolved at start */
	struct cpr_ctx *ctx;
	struct cpr_ramblock *rb;
	struct rec_vm rec;
	struct rec_history history;
	struct vm vm;
	uint64_t ram_ino;
	uint64_t page_size;
	uint64_t t_main;
	uint64_t t_resumed; /* last time the guest (re)started here */
	int control_fd;
	int signal_fd;
	int timer_fd;
	int reply_fd; /* client awaiting an upgrade result */
	struct upgrade_report report;
	/* The passthrough device, if any. */
	struct vfio_pt pt;
	pid_t keeper_pid; /* the old image's VM keeper, to reap */
	unsigned refused; /* upgrades refused in this image */
	bool timer_exit;  /* the timer ends the run instead of upgrading */
	bool quit;
};

/* main.c */
const char *mode_name(enum upgrade_mode m);
/* Upgrade now; returns only if refused (the guest runs on here). */
void vmm_upgrade(struct vmm *m, enum upgrade_mode mode, const char *path);

/* control.c */
int control_listen(const char *path);
void control_handle(struct vmm *m, int listen_fd);
void control_reply(int fd, const char *msg);
int control_client(const char *path, const char *cmd);

/* machine.c: RAM, guest and VM bring-up for both fresh and incoming images. */
int machine_boot(struct vmm *m);
int machine_adopt(struct vmm *m);
int machine_build_vm(struct vmm *m, bool defer_slots);
void machine_counters(struct vmm *m, uint64_t *counters);
/* Check guest and host fingerprints; 0 ok, -EBADMSG with @why filled. */
int machine_verify(struct vmm *m, bool ram, char *why, size_t len);

/* keeper.c: the old VM and address space outlive execve() until the new
 * image runs the guest. */
struct keeper {
	pid_t pid;
	int wfd;
	void *stack;
};
void keeper_start(struct vmm *m, struct keeper *k);
void keeper_stop(struct vmm *m, struct keeper *k);
void keeper_release(struct vmm *m);
void keeper_reap(struct vmm *m);

/* upgrade.c: the old image's side. */
/* Returns 1: handed off (exit now); -errno: refused, the guest runs here;
 * exec does not return on success.  @why explains a refusal. */
int upgrade_run(struct vmm *m, enum upgrade_mode mode, const char *path, char *why, size_t len);
/* upgrade.c: the new image's side. */
int incoming_exec(struct vmm *m);
int incoming_transfer(struct vmm *m, const char *path);

/* upgrade.c: pieces shared with cprd.c. */
void pause_boost(struct vmm *m, bool on);
int handoff_spawn(struct vmm *m, const char *path, const char *opt, const char *arg, pid_t *pid,
		  int *pidfd, char *why, size_t len);
int handoff_vcpus(struct vmm *m, enum upgrade_mode mode, int sock, pid_t pid, int pidfd, char *why,
		  size_t len);
int prepare_incoming(struct vmm *m);
int receive_vcpus(struct vmm *m, int sock);
int wait_or_child(int fd, int pidfd, int timeout_ms);
void child_stop(pid_t pid, int pidfd);
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);
void fd_close(int fd);

/* cprd.c: the hand-off through cprd(8); cprd-none.c when built without. */
extern const bool have_cprd_client;
int upgrade_cprd(struct vmm *m, const char *path, char *why, size_t len);
int incoming_cprd(struct vmm *m, const char *arg);

/* upgrade.c and cprd.c: pieces shared with kexec.c. */
int stop_guest(struct vmm *m, enum upgrade_mode mode, struct rec_pause *p);
int add_pause_records(struct vmm *m, struct rec_pause *p, struct cpr_state *st);
void drop_pause_records(struct vmm *m);
void resume_guest(struct vmm *m);
int apply_pause(struct vmm *m, const struct cpr_state *st);
void adopt_fds(struct vmm *m);
int export_bundle(struct vmm *m, int *ret_stream_fd, int **ret_fds, size_t *ret_n,
		  struct cpr_error *err);
int import_bundle(struct vmm *m, int stream_fd, int *fds, size_t n);

/* kexec.c: the guest across a kexec, through cprd's Live Update session. */
int upgrade_kexec(struct vmm *m, char *why, size_t len);
int incoming_kexec(struct vmm *m, const char *name);

/* report.c */
void report_boot(struct vmm *m);
void report_upgrade(struct vmm *m);
int report_reply(struct vmm *m, char *buf, size_t len);
void report_status(struct vmm *m, char *buf, size_t len);
void report_exit(struct vmm *m);

#endif
