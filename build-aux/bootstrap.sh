#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by ./run-demo and ./run-tests: install what is missing (Debian 12,
# as root), generate the build system, configure a build directory, build.
# Usage: . build-aux/bootstrap.sh; cpr_build DIR [configure options...]
set -eu

CPR_PACKAGES="build-essential autoconf automake libtool pkg-config libjson-c-dev libxml2-dev
libseccomp-dev libsystemd-dev check mandoc python3 systemd clang llvm
libclang-rt-14-dev clang-format gnuplot-nox procps abigail-tools"

# As root, a suite runs in its own PID namespace and session: whatever a
# test signals, it cannot reach a process outside the suite.
cpr_isolate=
if [ "$(id -u)" = 0 ] && unshare -fp --mount-proc true 2>/dev/null; then
	cpr_isolate="unshare -fp --mount-proc setsid"
fi

cpr_say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

cpr_install_deps() {
	missing=
	for p in $CPR_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	cpr_say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

cpr_build() {
	dir=$1
	shift
	cpr_install_deps
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
		cpr_say "autoreconf"
		autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	fi
	mkdir -p "$dir"
	if [ ! -f "$dir/config.status" ] || [ configure -nt "$dir/config.status" ]; then
		cpr_say "configure $dir $*"
		(cd "$dir" && ../configure -q "$@")
	fi
	cpr_say "build $dir"
	make -C "$dir" -s -j"$(nproc)" all >/dev/null
	make -C "$dir" -s -j"$(nproc)" check TESTS= >/dev/null
}
