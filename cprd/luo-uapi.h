/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Live Update Orchestrator uapi (/dev/liveupdate and its session fds).
 * The build host's <linux/liveupdate.h> when it has one; otherwise the
 * project's own copy of the stable structures, as Linux 7.2 defines them
 * (include/uapi/linux/liveupdate.h: 6.19 brought the device and session
 * ioctls, 7.2 LIVEUPDATE_SESSION_GET_NAME).
 */
#ifndef CPRD_LUO_UAPI_H
#define CPRD_LUO_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#ifdef HAVE_LINUX_LIVEUPDATE_H
#include <linux/liveupdate.h>
#else
#define LIVEUPDATE_IOCTL_TYPE 0xBA
#define LIVEUPDATE_SESSION_NAME_LENGTH 64

struct liveupdate_ioctl_create_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_ioctl_retrieve_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_session_preserve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_retrieve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_finish {
	__u32 size;
	__u32 reserved;
};

#define LIVEUPDATE_IOCTL_CREATE_SESSION _IO(LIVEUPDATE_IOCTL_TYPE, 0x00)
#define LIVEUPDATE_IOCTL_RETRIEVE_SESSION _IO(LIVEUPDATE_IOCTL_TYPE, 0x01)
#define LIVEUPDATE_SESSION_PRESERVE_FD _IO(LIVEUPDATE_IOCTL_TYPE, 0x40)
#define LIVEUPDATE_SESSION_RETRIEVE_FD _IO(LIVEUPDATE_IOCTL_TYPE, 0x41)
#define LIVEUPDATE_SESSION_FINISH _IO(LIVEUPDATE_IOCTL_TYPE, 0x42)
#endif

/* Linux 7.2; headers of 6.19 to 7.1 lack it. */
#ifndef LIVEUPDATE_SESSION_GET_NAME
struct liveupdate_session_get_name {
	__u32 size;
	__u32 reserved;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};
#define LIVEUPDATE_SESSION_GET_NAME _IO(LIVEUPDATE_IOCTL_TYPE, 0x43)
#endif

#endif
