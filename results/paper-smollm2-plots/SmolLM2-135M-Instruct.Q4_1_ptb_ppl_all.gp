set terminal svg size 800,560 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_ptb_ppl_all.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: ptb perplexity vs weight bits (all windows)'
set grid
set key below box
set datafile missing '?'
set ylabel 'perplexity (lower is better)'
set logscale y
set xrange [2.5:3.5]
set xtics ('W3' 3)
$s0 << EOD
3 242.8518582
EOD
$s1 << EOD
3 269.1027361
EOD
$s2 << EOD
3 131.8540365
EOD
$s3 << EOD
3 125.2048397
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 1 dt 2 title 'gptq per-channel', \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 1 dt 1 title 'gptq+nt per-channel loss=dist;lr=1e-05;iters=1', \
     $s2 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 2 dt 2 title 'gptq g128', \
     $s3 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1', \
     39.39338827 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
