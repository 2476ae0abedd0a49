set terminal svg size 800,560 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_wikitext2_kld.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: wikitext2 kld vs weight bits'
set grid
set key below box
set datafile missing '?'
set ylabel 'kld'
set xrange [1.5:4.5]
set xtics ('W2' 2, 'W3' 3, 'W4' 4)
$s0 << EOD
2 12.04939284
3 1.729019819
4 0.3744514108
EOD
$s1 << EOD
3 1.750472492
EOD
$s2 << EOD
2 7.806461209
3 1.283554263
4 0.3224970295
EOD
$s3 << EOD
3 1.22905045
EOD
$s4 << EOD
2 6.873116222
3 1.343456306
4 0.3373971687
EOD
$s5 << EOD
3 1.32353814
EOD
$s6 << EOD
3 1.249123207
EOD
$s7 << EOD
3 1.222382202
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 1 dt 2 title 'rtn g128 limit=8', \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 1 dt 1 title 'rtn+nt g128 loss=dist;lr=1e-05;iters=1;limit=8', \
     $s2 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 2 dt 2 title 'gptq g128 limit=8', \
     $s3 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=8', \
     $s4 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=8', \
     $s5 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=mean-std;lr=1e-05;iters=1;limit=8', \
     $s6 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=mse;lr=1e-05;iters=1;limit=8', \
     $s7 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=3;limit=8', \
     0 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
