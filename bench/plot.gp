# SPDX-License-Identifier: LGPL-2.1-or-later
# Guest pause versus RAM size per upgrade mode, from bench/blackout's
# blackout.dat (columns: ram_gib page_kib mode pause_ms floor_ms copy_ms
# qemu_ms backend qemu_accel; a figure not measured is nan).  bench/blackout
# passes which backend minivmm ran on (kvm, interpreter) and what QEMU ran
# under (kvm, tcg, none); qemu_max_gib > 0 says TCG was measured up to it.
#   gnuplot -e "dat='blackout.dat'; out='blackout'; backend='kvm'; qemu_accel='kvm'" bench/plot.gp
if (!exists("dat")) dat = 'blackout.dat'
if (!exists("out")) out = 'blackout'
if (!exists("backend")) backend = 'kvm'
if (!exists("qemu_accel")) qemu_accel = 'kvm'
if (!exists("qemu_max_gib")) qemu_max_gib = 0

kvm = (backend eq 'kvm')
floor_exec = kvm ? "floor: bare exec + KVM build (4 KiB)" \
		 : "floor: bare exec + interpreter vCPU start (4 KiB)"
floor_transfer = kvm ? "floor: one message + KVM_SET_REGS" \
		     : "floor: one message + interpreter register load"
qemu_how = (qemu_accel eq 'none') ? "not measured in this run" \
	   : sprintf("under %s, this run%s", (qemu_accel eq 'tcg') ? "TCG" : "KVM", \
		     qemu_max_gib > 0 ? sprintf(" (<= %d GiB)", qemu_max_gib) : "")

set title sprintf("minivmm on %s: guest pause during an in-place VMM upgrade", \
		  kvm ? "KVM" : "its interpreter (no KVM)")
set xlabel "guest RAM (GiB, fully populated)"
set ylabel "guest pause (ms, log scale)"
set logscale y
set format y "%g"
set xrange [0.5:8.5]
set yrange [0.001:100000]
set xtics (1, 2, 4, 8)
set key below maxrows 5
set grid ytics mytics xtics
set style data linespoints

sel(mode, page) = sprintf("< awk '$3 == \"%s\" && $2 == %d' %s", mode, page, dat)

# QEMU 10.0.2 measured earlier on a machine of this kind, for runs without it.
$qemu << EOD
1 2.8
8 4.1
EOD

set terminal pngcairo size 960,640 noenhanced
set output out.'.png'
plot sel("transfer", 4)    using 1:4 title "transfer, 4 KiB pages" lw 2 pt 7, \
     sel("transfer", 2048) using 1:4 title "transfer, 2 MiB pages" lw 2 pt 5, \
     sel("cprd", 4)        using 1:4 title "through cprd, 4 KiB pages" lw 2 pt 13, \
     sel("cprd", 2048)     using 1:4 title "through cprd, 2 MiB pages" lw 2 pt 15, \
     sel("exec", 4)        using 1:4 title "exec, 4 KiB pages" lw 2 pt 9, \
     sel("exec", 2048)     using 1:4 title "exec, 2 MiB pages" lw 2 pt 11, \
     sel("exec", 4)        using 1:6 title "copy: save + restore" dt 2 lw 1 pt 1, \
     sel("exec", 4)        using 1:5 title floor_exec dt 4 lw 1 pt 2, \
     sel("transfer", 4)    using 1:5 title floor_transfer dt 4 lw 1 pt 6, \
     sel("transfer", 4)    using 1:7 title "QEMU 10 cpr-transfer ".qemu_how.", 4 KiB pages" dt 3 lw 2 pt 3, \
     sel("transfer", 2048) using 1:7 title "QEMU 10 cpr-transfer ".qemu_how.", 2 MiB pages" dt 3 lw 2 pt 4, \
     $qemu using 1:2 title "QEMU 10.0 cpr-transfer under KVM (reference figures)" dt 3 lw 1 pt 3
set terminal svg size 960,640 noenhanced
set output out.'.svg'
replot
