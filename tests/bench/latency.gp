# Latency percentiles and throughput vs calls in flight, GetToken vs
# Health/Check (load_generator's CSV). Usage:
#   gnuplot -e "csv='load.csv'; png='latency.png'" latency.gp
set datafile separator ","
set terminal pngcairo size 1400,560 font "sans,10"
set output png
set multiplot layout 1,2 title "treezor-token-broker: cached GetToken vs grpc.health.v1.Health/Check (closed loop)"
set logscale x 2
set xlabel "calls in flight"
set grid
set key top left

g = sprintf("< grep ',GetToken,' '%s'", csv)
c = sprintf("< grep ',Check,' '%s'", csv)
set title "latency percentiles"
set ylabel "latency (µs)"
set logscale y
plot g using 1:4 with linespoints lw 2 lc rgb "#1f77b4" pt 7 title "GetToken p50", \
     g using 1:6 with linespoints lw 2 lc rgb "#1f77b4" pt 5 dt 2 title "GetToken p99", \
     g using 1:7 with linespoints lw 1 lc rgb "#1f77b4" pt 9 dt 3 title "GetToken p99.9", \
     c using 1:4 with linespoints lw 2 lc rgb "#d62728" pt 6 title "Check p50", \
     c using 1:6 with linespoints lw 2 lc rgb "#d62728" pt 4 dt 2 title "Check p99", \
     c using 1:7 with linespoints lw 1 lc rgb "#d62728" pt 8 dt 3 title "Check p99.9"

set title "throughput"
set ylabel "calls per second"
unset logscale y
set yrange [0:*]
plot g using 1:3 with linespoints lw 2 lc rgb "#1f77b4" pt 7 title "GetToken", \
     c using 1:3 with linespoints lw 2 lc rgb "#d62728" pt 6 title "Check"
unset multiplot
