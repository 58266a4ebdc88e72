# SPDX-License-Identifier: LGPL-2.1-or-later
# The test VM's provisioning, shared by tests/vm/run and ./run-tests' "vm"
# part: QEMU and the initramfs tools from Debian 12 (QEMU from
# bookworm-backports), and a kernel of the project's own built from Debian's
# linux-source package, cached outside the clone.
# Usage: . build-aux/vm.sh; cpr_vm_install_deps; cpr_vm_kernel FRAGMENT
#
# Every function returns non-zero with a line on stderr saying why when it
# cannot provide what it is asked for; the caller turns that into a skip.
#
# CPR_VM_CACHE (default /var/cache/cpr/vm) holds the kernel builds;
# CPR_VM_KERNEL_SUITE (default trixie-backports) and CPR_VM_KERNEL_PKG
# (default linux-source-7.3) name the source package.

: "${CPR_VM_CACHE:=/var/cache/cpr/vm}"
: "${CPR_VM_KERNEL_SUITE:=trixie-backports}"
: "${CPR_VM_KERNEL_PKG:=linux-source-7.3}"
CPR_VM_MIRROR=http://deb.debian.org/debian
CPR_VM_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
CPR_VM_BACKPORTS=/etc/apt/sources.list.d/bookworm-backports.sources
CPR_VM_PACKAGES="busybox-static cpio flex bison bc libelf-dev libssl-dev kexec-tools rsync"

cpr_vm_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Prints the packages of "$@" that are not installed.
cpr_vm_missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || printf ' %s' "$p"
	done
}

# bookworm-backports as its own sources file, added only when no source of
# the host already names that suite.
cpr_vm_add_backports() {
	if grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 1
	fi
	cat >"$CPR_VM_BACKPORTS" <<EOF
Types: deb
URIs: $CPR_VM_MIRROR
Suites: bookworm-backports
Components: main
Signed-By: $CPR_VM_KEYRING
EOF
}

# QEMU from bookworm-backports, the rest from bookworm; as root, only what is
# missing.
cpr_vm_install_deps() {
	missing=$(cpr_vm_missing $CPR_VM_PACKAGES)
	qemu=$(cpr_vm_missing qemu-system-x86)
	[ -z "$missing$qemu" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing$qemu (run as root to install them)" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	[ -z "$qemu" ] || cpr_vm_add_backports || true
	cpr_vm_say "apt-get update"
	apt-get update -qq || { echo "apt-get update failed" >&2; return 1; }
	if [ -n "$missing" ]; then
		cpr_vm_say "installing:$missing"
		apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
			{ echo "could not install$missing" >&2; return 1; }
	fi
	if [ -n "$qemu" ]; then
		cpr_vm_say "installing qemu-system-x86 from bookworm-backports"
		apt-get install -y -qq --no-install-recommends -t bookworm-backports \
			qemu-system-x86 >/dev/null ||
			{ echo "could not install qemu-system-x86 from bookworm-backports" >&2; return 1; }
	fi
}

# apt-get with its own sources list and state, so the kernel's suite never
# reaches the host's package lists.
cpr_vm_apt() {
	apt-get -q -o Dir::Etc::SourceList="$CPR_VM_CACHE/apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$CPR_VM_CACHE/apt/lists" \
		-o Dir::Cache="$CPR_VM_CACHE/apt/cache" \
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null "$@"
}

# Downloads and unpacks the kernel source package (once); prints the path of
# its source tarball.  Called with the cache lock held.
cpr_vm_kernel_source() {
	a=$CPR_VM_CACHE/apt
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs" || return 1
	echo "deb [signed-by=$CPR_VM_KEYRING] $CPR_VM_MIRROR $CPR_VM_KERNEL_SUITE main" >"$a/sources.list"
	deb=$(ls "$a/debs/${CPR_VM_KERNEL_PKG}"_*.deb 2>/dev/null | tail -1)
	if [ -z "$deb" ]; then
		cpr_vm_say "fetching $CPR_VM_KERNEL_PKG from $CPR_VM_KERNEL_SUITE (separate apt state in $a)"
		cpr_vm_apt update >"$a/update.log" 2>&1 ||
			{ cat "$a/update.log" >&2; echo "apt-get update of $CPR_VM_KERNEL_SUITE failed" >&2; return 1; }
		(cd "$a/debs" && cpr_vm_apt download "$CPR_VM_KERNEL_PKG") >"$a/download.log" 2>&1 ||
			{ cat "$a/download.log" >&2; echo "could not download $CPR_VM_KERNEL_PKG" >&2; return 1; }
		deb=$(ls "$a/debs/${CPR_VM_KERNEL_PKG}"_*.deb | tail -1)
	fi
	ver=$(dpkg-deb -f "$deb" Version) || return 1
	src=$CPR_VM_CACHE/src/$CPR_VM_KERNEL_PKG-$ver
	if [ ! -f "$src/.unpacked" ]; then
		rm -rf "$src"
		mkdir -p "$src"
		dpkg-deb -x "$deb" "$src" || return 1
		touch "$src/.unpacked"
	fi
	tarball=$(ls "$src"/usr/src/linux-source-*.tar.xz 2>/dev/null | head -1)
	[ -n "$tarball" ] || { echo "no source tarball in $deb" >&2; return 1; }
	echo "$ver $tarball"
}

# Fails naming every option of the fragment $1 that the configuration $2
# does not have as the fragment says.
cpr_vm_config_verify() {
	sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*\)=\(.*\)/\1 \2/p' \
		-e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set/\1 n/p' "$1" |
		while read -r opt want; do
			got=$(sed -n "s/^$opt=//p" "$2")
			[ "$got" = "$want" ] || [ -z "$got$want" ] || [ "$want$got" = n ] ||
				echo "$opt=$want (the configuration has ${got:-it unset})"
		done
}

# Builds the kernel of fragment $1 from the source tarball $2 into $3:
# bzImage, config, and the uapi headers in usr/include.
cpr_vm_kernel_build() {
	frag=$1 tarball=$2 out=$3
	b=$CPR_VM_CACHE/build/$(basename "$out")
	rm -rf "$b" "$out.tmp"
	mkdir -p "$b" "$out.tmp"
	log=$out.tmp/build.log
	t0=$(date +%s)
	cpr_vm_say "building the test VM kernel in $b (log: $log)"
	# (No "set -e" here: it does not apply left of ||.)
	(tar -xJf "$tarball" --strip-components=1 -C "$b" && cd "$b" &&
		make -s tinyconfig && scripts/kconfig/merge_config.sh -m .config "$frag" &&
		make -s olddefconfig) >"$log" 2>&1 || { tail -20 "$log" >&2; echo "configuring the kernel failed" >&2; return 1; }
	dropped=$(cpr_vm_config_verify "$frag" "$b/.config")
	if [ -n "$dropped" ]; then
		printf 'the kernel configuration lost options of %s:\n%s\n' "$frag" "$dropped" >&2
		return 1
	fi
	(cd "$b" && nice make -j"$(nproc)" bzImage &&
		make -s headers_install INSTALL_HDR_PATH="$out.tmp/usr") >>"$log" 2>&1 || { tail -30 "$log" >&2; echo "building the kernel failed (log: $log)" >&2; return 1; }
	cp "$b/arch/x86/boot/bzImage" "$b/.config" "$out.tmp/"
	mv "$out.tmp/.config" "$out.tmp/config"
	echo "$(($(date +%s) - t0))" >"$out.tmp/build-seconds"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	rm -rf "$b"
	cpr_vm_say "test VM kernel built in $(cat "$out/build-seconds") s: $out"
}

# Prints the directory of the cached kernel for fragment $1 (bzImage,
# config, usr/include), building it first when no run has; the lock makes
# a second concurrent run wait for the first's build instead of repeating it.
cpr_vm_kernel() {
	frag=$(realpath -e "$1") || { echo "no kernel fragment $1" >&2; return 1; }
	mkdir -p "$CPR_VM_CACHE" || return 1
	command -v flock >/dev/null || { echo "flock not found" >&2; return 1; }
	(
		flock 9 || exit 1
		set -- $(cpr_vm_kernel_source) || exit 1
		[ $# = 2 ] || exit 1
		ver=$1 tarball=$2
		sum=$(sha256sum "$frag" | cut -c1-16)
		out=$CPR_VM_CACHE/linux-$ver-$sum
		if [ ! -f "$out/bzImage" ] || [ ! -d "$out/usr/include" ]; then
			cpr_vm_kernel_build "$frag" "$tarball" "$out" || exit 1
		fi
		echo "$out"
	) 9>"$CPR_VM_CACHE/lock"
}

# The real program behind a libtool wrapper script $1, or $1 itself.
cpr_vm_ltreal() {
	if head -5 "$1" 2>/dev/null | grep -q 'temporary wrapper script for'; then
		d=$(dirname "$1") b=$(basename "$1")
		for r in "$d/.libs/lt-$b" "$d/.libs/$b"; do
			[ -x "$r" ] && echo "$r" && return 0
		done
	fi
	echo "$1"
}

# The LD_LIBRARY_PATH a libtool wrapper script $1 sets for its program.
cpr_vm_ltpath() {
	sed -n 's/^ *LD_LIBRARY_PATH="\([^"$]*\):*\$LD_LIBRARY_PATH".*/\1/p' "$1" 2>/dev/null | head -1
}

# cpr_vm_stage_file STAGE SRC DEST: copies SRC (a file, or a directory as
# it is) to STAGE/DEST; for a dynamic ELF program also its interpreter and
# every library ldd finds, at the paths ldd names them by.  A library outside the loader's default directories
# gets its directory appended to STAGE/etc/cpr-vm/libpath.
cpr_vm_stage_file() {
	stage=$1 src=$2 dest=$3
	real=$(cpr_vm_ltreal "$src")
	mkdir -p "$stage$(dirname "$dest")" || return 1
	if [ -d "$real" ]; then
		cp -RL "$real" "$stage$dest"
		return
	fi
	cp -L "$real" "$stage$dest" || return 1
	[ "$(head -c 4 "$real" | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
	libs=$(LD_LIBRARY_PATH=$(cpr_vm_ltpath "$src") ldd "$real" 2>/dev/null) || return 0
	if echo "$libs" | grep -q 'not found'; then
		echo "$src: $(echo "$libs" | grep 'not found' | tr -s ' \t' ' ')" >&2
		return 1
	fi
	echo "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			[ -e "$stage$lib" ] && continue
			mkdir -p "$stage$(dirname "$lib")" && cp -L "$lib" "$stage$lib" || exit 1
			case $(dirname "$lib") in
			/lib | /lib64 | /usr/lib | /lib/x86_64-linux-gnu | /usr/lib/x86_64-linux-gnu) ;;
			*) dirname "$lib" >>"$stage/etc/cpr-vm/libpath" ;;
			esac
		done
}

# Quotes each argument for sh.
cpr_vm_quote() {
	for a in "$@"; do
		printf "'%s' " "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
	done
}

# cpr_vm_initramfs OUT INIT BIND TOKEN ENVFILE FILES -- CMD...: writes a
# gzipped newc initramfs to OUT: busybox, INIT as /init, /etc/cpr-vm/conf
# (TOKEN, whether to BIND the e1000e to vfio-pci), /etc/cpr-vm/cmd (the
# lines of ENVFILE, then CMD), and each SRC[:DEST] line of FILES.
cpr_vm_initramfs() {
	out=$1 init=$2 bind=$3 token=$4 envfile=$5 files=$6
	shift 7
	stage=$(mktemp -d "${TMPDIR:-/tmp}/cpr-vm-stage.XXXXXX") || return 1
	mkdir -p "$stage/bin" "$stage/etc/cpr-vm" "$stage/root"
	if ! cp /bin/busybox "$stage/bin/busybox" || ! cp "$init" "$stage/init"; then
		rm -rf "$stage"
		return 1
	fi
	chmod 755 "$stage/init"
	printf 'CPR_VM_TOKEN=%s\nCPR_VM_BIND=%s\n' "$token" "$bind" >"$stage/etc/cpr-vm/conf"
	rc=0
	while IFS= read -r spec; do
		[ -n "$spec" ] || continue
		src=${spec%%:*} dest=${spec#*:}
		[ "$dest" != "$spec" ] || dest=$(realpath -m "$src")
		cpr_vm_stage_file "$stage" "$src" "$dest" || { echo "cannot add $src to the initramfs" >&2; rc=1; }
	done <"$files"
	{
		if [ -f "$stage/etc/cpr-vm/libpath" ]; then
			echo "export LD_LIBRARY_PATH=$(sort -u "$stage/etc/cpr-vm/libpath" | paste -sd:)"
		fi
		cat "$envfile"
		cpr_vm_quote "$@"
		echo
	} >"$stage/etc/cpr-vm/cmd"
	[ "$rc" = 0 ] && (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$out" || rc=1
	rm -rf "$stage"
	return "$rc"
}

# The QEMU accelerator options for booting kernel $1: KVM when /dev/kvm
# opens and a probe boot of that kernel under KVM reaches its init stage
# (QEMU aborts or the guest hangs on some nested hosts whose /dev/kvm opens),
# TCG otherwise.  The probe's verdict is cached per host kernel, QEMU and
# guest kernel; CPR_VM_ACCEL (kvm or tcg) skips it.  Prints the options and
# then, on stderr, why.
cpr_vm_accel() {
	kvm="-accel kvm,kernel-irqchip=split -cpu host" tcg="-accel tcg -cpu max"
	case ${CPR_VM_ACCEL:-} in
	kvm) echo "$kvm" && return 0 ;;
	tcg) echo "$tcg" && return 0 ;;
	esac
	if ! (exec 3<>/dev/kvm) 2>/dev/null; then
		echo "$tcg"
		echo "tcg: /dev/kvm does not open" >&2
		return 0
	fi
	key=$( (uname -r; qemu-system-x86_64 --version | head -1; sha256sum <"$1") | sha256sum | cut -c1-16)
	v=$CPR_VM_CACHE/accel-$key
	if [ ! -s "$v" ]; then
		log=$(mktemp) || return 1
		# shellcheck disable=SC2086
		timeout -k 2 15 qemu-system-x86_64 $kvm -machine q35 -m 256 -nodefaults \
			-display none -monitor none -no-reboot -serial "file:$log" \
			-kernel "$1" -append "console=ttyS0 panic=-1" </dev/null >"$log.err" 2>&1
		rc=$?
		if grep -q 'Kernel panic' "$log"; then
			echo kvm >"$v.tmp"
		elif [ "$rc" = 124 ]; then
			echo "tcg: a guest under KVM did not reach its init stage in 15 s" >"$v.tmp"
		else
			echo "tcg: QEMU under KVM exited $rc: $(grep -v '^ *$' "$log.err" | head -1)" >"$v.tmp"
		fi
		rm -f "$log" "$log.err"
		mv "$v.tmp" "$v" 2>/dev/null || v=$v.tmp
	fi
	if [ "$(cat "$v")" = kvm ]; then
		echo "$kvm"
		echo "kvm" >&2
	else
		echo "$tcg"
		cat "$v" >&2
	fi
	rm -f "$v.tmp"
}
