#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build an older commit of this repository's own history, out of tree and
# cached, for the cross-build tests (tests/cross-build.sh).
#
# Usage: build-aux/old-build.sh SRCDIR COMMIT [TARGET...]
#
# Prints the build directory of COMMIT (its TARGETs built, default
# examples/minivmm/minivmm) on stdout; progress goes to stderr.  The cache
# is keyed by the full commit hash: $CPR_OLD_CACHE (default
# /var/cache/cpr/old), or $CPR_OLD_FALLBACK when that is not writable.  A
# lock serialises concurrent runs; a build is moved into the cache only
# once it succeeded, so a failed or interrupted one leaves nothing behind.
# The build has no sanitizers and static libraries only, so that an old
# binary never loads another build's libcpr.so.
#
# Exit status: 0 built or cached; 77 SRCDIR is not the top of a git
# checkout, lacks COMMIT, or COMMIT cannot be configured on this machine
# (the reason on stderr); 1 its make failed (the log's end on stderr).
set -eu

[ $# -ge 2 ] || { echo "usage: $0 SRCDIR COMMIT [TARGET...]" >&2; exit 100; }
src=$1 commit=$2
shift 2
[ $# -gt 0 ] || set -- examples/minivmm/minivmm

skip() {
	echo "$*" >&2
	exit 77
}

command -v git >/dev/null 2>&1 || skip "git is not installed"
# The top of a checkout: a tarball unpacked inside one (make distcheck)
# must not build from the enclosing repository's history.
top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null) &&
	[ "$(cd "$top" && pwd -P)" = "$(cd "$src" && pwd -P)" ] ||
	skip "$src is not a git checkout (a release tarball has no history)"
hash=$(git -C "$src" rev-parse --verify -q "$commit^{commit}") ||
	skip "commit $commit is not in the history of $src (a shallow clone?)"

# The cache: the system's when writable, else the fallback.
cache=${CPR_OLD_CACHE:-/var/cache/cpr/old}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${CPR_OLD_FALLBACK:-${TMPDIR:-/tmp}/cpr-old-$(id -u)}
	mkdir -p "$cache"
fi
dir=$cache/$hash

# One builder per commit at a time; the others wait and use its result.
exec 9>"$cache/$hash.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

built() {
	for t in "$@"; do
		[ -x "$dir/build/$t" ] || return 1
	done
	[ -f "$dir/.built" ]
}

if built "$@"; then
	echo "$dir/build"
	exit 0
fi

tmp=$(mktemp -d "$cache/.$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Whatever an earlier build of this commit left (fewer targets): redo it.
[ -d "$dir" ] && cp -a "$dir/." "$tmp/"
log=$tmp/build.log
t0=$(date +%s)
echo "old-build: building $(git -C "$src" log -1 --format='%h %s' "$hash" | cut -c1-72)" >&2
# Configuring needs tools and libraries from outside the tree: when that
# fails, the machine lacks them (a skip); a failed make is the tree's.
command -v autoreconf >/dev/null 2>&1 || skip "autoreconf is not installed"
if ! {
	[ -f "$tmp/src/configure.ac" ] || {
		mkdir -p "$tmp/src" &&
			git -C "$src" archive --format=tar "$hash" | tar -x -C "$tmp/src"
	}
	[ -x "$tmp/src/configure" ] || (cd "$tmp/src" && autoreconf -fi)
	mkdir -p "$tmp/build"
	[ -f "$tmp/build/config.status" ] ||
		(cd "$tmp/build" && ../src/configure -q --disable-shared --enable-static)
} >"$log" 2>&1; then
	tail -5 "$log" >&2
	skip "configuring $hash failed on this machine: $(grep -h 'error:' "$log" | tail -1)"
fi
if ! make -C "$tmp/build" -s -j"${CPR_OLD_JOBS:-2}" "$@" >>"$log" 2>&1; then
	tail -40 "$log" >&2
	echo "old-build: building $hash failed" >&2
	exit 1
fi
: >"$tmp/.built"
chmod 755 "$tmp" # mktemp's 0700: let other users read the cache
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "old-build: $hash built in $(($(date +%s) - t0)) s" >&2
echo "$dir/build"
