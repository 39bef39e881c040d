# The legitimate caller's GetToken p50/p99 without and with each flood, and
# the broker's peak RSS against the memory limit (hostile_load_benchmark's
# CSV). Usage:
#   gnuplot -e "csv='hostile.csv'; png='hostile.png'; limit=256" hostile.gp
set datafile separator ","
set terminal pngcairo size 1400,560 font "sans,10"
set output png
set multiplot layout 1,2 title "treezor-token-broker under hostile load: a legitimate caller's cached GetToken"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics rotate by -20

set title "legitimate caller latency (µs)"
set ylabel "µs"
set yrange [0:*]
plot csv using 4:xtic(1) title "p50 without" lc rgb "#9ecae1", \
     ''  using 8 title "p50 under attack" lc rgb "#3182bd", \
     ''  using 5 title "p99 without" lc rgb "#fdae6b", \
     ''  using 9 title "p99 under attack" lc rgb "#e6550d"

set title sprintf("broker peak RSS vs the %g MiB memory limit", limit)
set ylabel "MiB"
set yrange [0:limit * 1.1]
plot csv using 11:xtic(1) title "RSS without" lc rgb "#a1d99b", \
     ''  using 12 title "RSS under attack" lc rgb "#31a354", \
     limit with lines lw 2 lc rgb "#d62728" dt 2 title "limit"
