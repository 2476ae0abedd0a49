set terminal svg size 900,872 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_wikitext2_kld.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: wikitext2 kld vs weight bits (first 8 windows)'
set grid
set key below box
set datafile missing '?'
set ylabel 'kld'
set xrange [1.5:4.5]
set xtics ('W2' 2, 'W3' 3, 'W4' 4)
$s0 << EOD
3 3.281006142
4 0.6558590323
EOD
$s1 << EOD
3 2.95864563
4 0.6151838061
EOD
$s2 << EOD
2 12.04939284
3 1.729019819
4 0.3744514108
EOD
$s3 << EOD
2 10.92096742
3 1.750472492
4 0.3699223915
EOD
$s4 << EOD
3 1.296850437
4 0.317561589
EOD
$s5 << EOD
3 1.29317686
4 0.3145018822
EOD
$s6 << EOD
3 2.213166808
4 0.5078702863
EOD
$s7 << EOD
3 2.084648499
4 0.5250410188
EOD
$s8 << EOD
3 1.089788998
EOD
$s9 << EOD
2 7.806461209
3 1.283554263
4 0.3224970295
EOD
$s10 << EOD
3 1.074801732
EOD
$s11 << EOD
3 1.22905045
EOD
$s12 << EOD
2 6.873116222
3 1.343456306
4 0.3373971687
EOD
$s13 << EOD
3 1.32353814
EOD
$s14 << EOD
3 1.249123207
EOD
$s15 << EOD
3 1.222382202
EOD
$s16 << EOD
3 1.057254835
4 0.2884497846
EOD
$s17 << EOD
3 1.067677916
4 0.270155972
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
     0 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
