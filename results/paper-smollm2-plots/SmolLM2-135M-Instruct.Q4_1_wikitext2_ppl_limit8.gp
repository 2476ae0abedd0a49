set terminal svg size 900,872 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_wikitext2_ppl_limit8.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: wikitext2 perplexity vs weight bits (first 8 windows)'
set grid
set key below box
set datafile missing '?'
set ylabel 'perplexity (lower is better)'
set logscale y
set xrange [1.5:4.5]
set xtics ('W2' 2, 'W3' 3, 'W4' 4)
$s0 << EOD
3 506.0350737
4 32.86430281
EOD
$s1 << EOD
3 362.4882103
4 31.84951866
EOD
$s2 << EOD
2 3500706.451
3 106.5237113
4 26.18600384
EOD
$s3 << EOD
2 1148241.112
3 109.3578749
4 26.16233053
EOD
$s4 << EOD
3 65.63099823
4 25.38432305
EOD
$s5 << EOD
3 65.61389267
4 25.3929608
EOD
$s6 << EOD
3 180.6271673
4 33.04031826
EOD
$s7 << EOD
3 157.9592546
4 32.52074839
EOD
$s8 << EOD
3 60.3239343
EOD
$s9 << EOD
2 53972.91972
3 73.78696606
4 25.98042158
EOD
$s10 << EOD
3 58.21845051
EOD
$s11 << EOD
3 66.46387238
EOD
$s12 << EOD
2 20622.75523
3 77.1817366
4 27.35919334
EOD
$s13 << EOD
3 74.12000703
EOD
$s14 << EOD
3 67.21022209
EOD
$s15 << EOD
3 70.22079148
EOD
$s16 << EOD
3 58.00308352
4 24.77442989
EOD
$s17 << EOD
3 57.97813249
4 25.28786598
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 1 dt 2 title 'rtn per-channel limit=8', \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 1 dt 1 title 'rtn+nt per-channel loss=dist;lr=1e-05;iters=1;limit=8', \
     $s2 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 2 dt 2 title 'rtn g128 limit=8', \
     $s3 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'rtn+nt g128 loss=dist;lr=1e-05;iters=1;limit=8', \
     $s4 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 3 dt 2 title 'rtn g64 limit=8', \
     $s5 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 3 dt 1 title 'rtn+nt g64 loss=dist;lr=1e-05;iters=1;limit=8', \
     $s6 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 4 dt 2 title 'gptq per-channel limit=8', \
     $s7 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 4 dt 1 title 'gptq+nt per-channel loss=dist;lr=1e-05;iters=1;limit=8', \
     $s8 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 5 dt 2 title 'gptq g128 act_order;limit=8', \
     $s9 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 5 dt 2 title 'gptq g128 limit=8', \
     $s10 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 act_order;loss=dist;lr=1e-05;iters=1;limit=8', \
     $s11 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=8 calib=c4:32x512:seed0', \
     $s12 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=8 calib=smollm2-gen-32x512-seed0', \
     $s13 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=mean-std;lr=1e-05;iters=1;limit=8', \
     $s14 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=mse;lr=1e-05;iters=1;limit=8', \
     $s15 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=3;limit=8', \
     $s16 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 6 dt 2 title 'gptq g64 limit=8', \
     $s17 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 6 dt 1 title 'gptq+nt g64 loss=dist;lr=1e-05;iters=1;limit=8', \
     19.13344124 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
