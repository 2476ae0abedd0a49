set terminal svg size 900,872 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_wikitext2_top1.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: wikitext2 top1 vs weight bits (first 8 windows)'
set grid
set key below box
set datafile missing '?'
set ylabel 'top1'
set xrange [1.5:4.5]
set xtics ('W2' 2, 'W3' 3, 'W4' 4)
$s0 << EOD
3 0.2069491939
4 0.5904372252
EOD
$s1 << EOD
3 0.2342452369
4 0.6028334148
EOD
$s2 << EOD
2 0.003053248657
3 0.3511846605
4 0.6783707865
EOD
$s3 << EOD
2 0.00506839277
3 0.3517953102
4 0.6789203713
EOD
$s4 << EOD
3 0.438690767
4 0.6955911089
EOD
$s5 << EOD
3 0.4420493405
4 0.7005984367
EOD
$s6 << EOD
3 0.3339032731
4 0.6297630679
EOD
$s7 << EOD
3 0.3436126038
4 0.6355031754
EOD
$s8 << EOD
3 0.4918783586
EOD
$s9 << EOD
2 0.02393746947
3 0.4602467025
4 0.695346849
EOD
$s10 << EOD
3 0.4912066439
EOD
$s11 << EOD
3 0.4622007816
EOD
$s12 << EOD
2 0.04060820713
3 0.4344162189
4 0.6971177333
EOD
$s13 << EOD
3 0.4491328774
EOD
$s14 << EOD
3 0.4630556913
EOD
$s15 << EOD
3 0.4581094284
EOD
$s16 << EOD
3 0.493221788
4 0.7216658525
EOD
$s17 << EOD
3 0.4891914998
4 0.7275280899
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
     1 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
