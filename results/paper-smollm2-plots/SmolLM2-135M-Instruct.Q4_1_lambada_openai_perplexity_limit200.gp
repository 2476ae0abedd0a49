set terminal svg size 920,872 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_lambada_openai_perplexity_limit200.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: lambada_openai perplexity vs weight bits (first 200 items)'
set grid
set key below box
set datafile missing '?'
set ylabel 'perplexity'
set xrange [1.5:4.5]
set xtics ('W2' 2, 'W3' 3, 'W4' 4)
$s0 << EOD
3 103203.8428
4 147.4879905
EOD
$s1 << EOD
3 91174.0893
4 147.4436697
EOD
$s2 << EOD
2 2.013936529e+10
3 2268.894214
4 106.9611468
EOD
$s3 << EOD
2 2.045295812e+10
3 3383.420646
4 106.9219825
EOD
$s4 << EOD
3 448.6195408
4 101.7962947
EOD
$s5 << EOD
3 568.2163796
4 106.1736217
EOD
$s6 << EOD
3 7998.912603
4 266.6885317
EOD
$s7 << EOD
3 29861.06766
4 208.3162269
EOD
$s8 << EOD
3 853.1177404
EOD
$s9 << EOD
2 485626555.7
3 3207.209124
4 105.7958486
EOD
$s10 << EOD
3 693.5547378
EOD
$s11 << EOD
3 1629.220089
EOD
$s12 << EOD
2 234279863.7
3 1551.074608
4 103.4070827
EOD
$s13 << EOD
3 1725.341119
EOD
$s14 << EOD
3 1170.003797
EOD
$s15 << EOD
3 893.0077134
EOD
$s16 << EOD
3 826.4632265
4 55.25947332
EOD
$s17 << EOD
3 693.0574603
4 69.36769253
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 1 dt 2 title 'rtn per-channel limit=200', \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 1 dt 1 title 'rtn+nt per-channel loss=dist;lr=1e-05;iters=1;limit=200', \
     $s2 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 2 dt 2 title 'rtn g128 limit=200', \
     $s3 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 2 dt 1 title 'rtn+nt g128 loss=dist;lr=1e-05;iters=1;limit=200', \
     $s4 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 3 dt 2 title 'rtn g64 limit=200', \
     $s5 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 3 dt 1 title 'rtn+nt g64 loss=dist;lr=1e-05;iters=1;limit=200', \
     $s6 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 4 dt 2 title 'gptq per-channel limit=200', \
     $s7 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 4 dt 1 title 'gptq+nt per-channel loss=dist;lr=1e-05;iters=1;limit=200', \
     $s8 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 5 dt 2 title 'gptq g128 act_order;limit=200', \
     $s9 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 5 dt 2 title 'gptq g128 limit=200', \
     $s10 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 act_order;loss=dist;lr=1e-05;iters=1;limit=200', \
     $s11 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=200 calib=c4:32x512:seed0', \
     $s12 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1;limit=200 calib=smollm2-gen-32x512-seed0', \
     $s13 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=mean-std;lr=1e-05;iters=1;limit=200', \
     $s14 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=mse;lr=1e-05;iters=1;limit=200', \
     $s15 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 5 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=3;limit=200', \
     $s16 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 6 dt 2 title 'gptq g64 limit=200', \
     $s17 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 6 dt 1 title 'gptq+nt g64 loss=dist;lr=1e-05;iters=1;limit=200', \
     44.13592231 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
