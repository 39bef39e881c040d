# Upstream token requests per second over the scale run (scale_benchmark's
# CSV): first tokens (warm-up) and renewals, with the theoretical steady
# rate. Usage:
#   gnuplot -e "csv='renewals.csv'; png='renewals.png'; theory=222.2; title='...'" renewals.gp
set datafile separator ","
set terminal pngcairo size 1400,500 font "sans,10"
set output png
if (!exists("theory")) theory = 0
if (!exists("title")) title = "upstream token requests per second"
set title title
set xlabel "seconds since the broker was started"
set ylabel "requests to Treezor per second"
set grid
set key top right
set style fill solid 0.8 noborder
set boxwidth 1.0
set yrange [0:*]
set xrange [0:*]
# Stacked: all requests (blue), first tokens drawn over their lower part.
plot csv every ::1 using 1:2 with boxes lc rgb "#1f77b4" title "renewals", \
     ''  every ::1 using 1:3 with boxes lc rgb "#ff7f0e" title "first tokens (warm-up)", \
     theory with lines lw 2 dt 2 lc rgb "#2ca02c" title sprintf("theory: one renewal per entry per period (%.1f/s)", theory)
