#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/kexec.sh: the blackout of a kernel upgrade under minivmm, in the test
# VM: guest stopped -> guest running on the new kernel, through cprd's Live
# Update session (tests/vm/kexec.sh, one round trip, no failure cases), per
# guest RAM size, broken down on the time stamp counter (it runs on across
# the kexec):
#
#   freeze_preserve_ms   vCPUs stopped -> the bundle preserved (old kernel)
#   kexec_ms             -> the new kernel starts (kexec -e, purgatory)
#   boot_to_cprd_ms      -> cprd ready, its session retrieved and the bundle
#                           rebuilt (cprd retrieves before it is ready)
#   claim_ms             cprd ready -> minivmm has claimed the bundle
#   adopt_ms             -> RAM adopted, vCPUs loaded, the guest runs
#
# and the Shmem growth while the new minivmm adopts (the RAM is not copied:
# it stays near 0 whatever the size).  The copy baseline of the requirement
# (RAM saved to a virtio disk, reboot, restored) is not measured here yet.
#
#   bench/kexec.sh [--json] [--sizes 256,1024] [BUILDDIR]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
json='' sizes=256,1024
while [ $# -gt 0 ]; do
	case $1 in
	--json) json=1 ;;
	--sizes) sizes=$2; shift ;;
	*) break ;;
	esac
	shift
done
b=$(cd "${1:-$top/_build}" && pwd) || exit 100
T=$(mktemp -d "${TMPDIR:-/tmp}/cpr-bench-kexec.XXXXXX") || exit 111
trap 'rm -rf "$T"' EXIT
make -C "$b" -s vm-programs VM_UAPI="$("$top/tests/vm/run" -p)/usr/include" >/dev/null || exit 111

# one SIZE_MIB: prints "size blackout freeze kexec boot claim adopt shmem_kib"
one() {
	mem=$(($1 * 2 + 1024))
	"$top/tests/vm/run" -b -n -m "$mem" -a "kho=on liveupdate=on" -t 600 \
		-e CPR_B="$b" -e CPR_TOP="$top" -e ROUNDS=1 -e FAILURES=0 -e RAM="$1M" \
		-i "$top/tests/vm/kexec.sh" -i "$b/cprd/cprd" -i "$b/cprd/cprctl" \
		-i "$b/examples/minivmm/minivmm" -i "$top/policy/cprd.policy" \
		-i "$(command -v kexec)" -i "$b/tests/vm/luo-forge" \
		-- sh "$top/tests/vm/kexec.sh" >"$T/out.$1" 2>"$T/err.$1" ||
		{ cat "$T/out.$1" "$T/err.$1" >&2; return 1; }
	awk -v size="$1" '
		/freeze_preserve_ns=/ { for (i = 1; i <= NF; i++) if ($i ~ /^freeze_preserve_ns=/) { sub(/^[^=]*[=]/, "", $i); fp = $i / 1e6 } }
		/cprd ready/ && seen_boot { ready = $4 * 1000 }
		/cpr-vm: boot 2/ { seen_boot = 1 }
		/kexec     blackout/ {
			for (i = 1; i <= NF; i++) {
				if ($i == "blackout") bo = $(i + 1)
				if ($i == "started") ks = $(i + 2) + 0
				if ($i == "process") pr = $(i + 2) + 0
				if ($i == "claimed") cl = $(i + 1) + 0
			}
		}
		/RAM not copied: Shmem/ { for (i = 1; i <= NF; i++) if ($i == "Shmem") { a = $(i + 1); c = $(i + 3) } }
		END {
			if (!bo) exit 1
			printf "%s %.3f %.3f %.3f %.3f %.3f %.3f %d\n", size, bo, fp, ks - fp,
				ready, cl - ks - ready, bo - cl, c - a
		}' "$T/out.$1"
}

: >"$T/res"
for s in $(echo "$sizes" | tr , ' '); do
	one "$s" >>"$T/res" || { echo "bench/kexec.sh: the $s MiB run failed" >&2; exit 1; }
done
if [ -n "$json" ]; then
	awk 'BEGIN { printf "{\"bench\":\"kexec\",\"copy_baseline\":null,\"cases\":[" }
		{ printf "%s{\"ram_mib\":%s,\"blackout_ms\":%s,\"freeze_preserve_ms\":%s,\"kexec_ms\":%s,\"boot_to_cprd_ms\":%s,\"claim_ms\":%s,\"adopt_ms\":%s,\"shmem_growth_kib\":%s}", (NR > 1 ? "," : ""), $1, $2, $3, $4, $5, $6, $7, $8
		  v[NR] = $2 }
		END { printf "],\"flat_ratio\":%.3f}\n", (NR > 1 ? v[NR] / v[1] : 1) }' "$T/res"
else
	awk '{ printf "%5s MiB: blackout %8.1f ms = freeze+preserve %.1f + kexec %.1f + boot to cprd ready %.1f + claim %.1f + adopt and run %.1f; Shmem +%d KiB\n", $1, $2, $3, $4, $5, $6, $7, $8; v[NR] = $2 }
		END { if (NR > 1) printf "flat: %.2fx from the first size to the last\n", v[NR] / v[1] }' "$T/res"
fi
