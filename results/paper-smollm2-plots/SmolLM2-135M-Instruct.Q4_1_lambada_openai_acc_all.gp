set terminal svg size 800,560 noenhanced font 'sans,13' background 'white'
set output 'results/paper-smollm2-plots/SmolLM2-135M-Instruct.Q4_1_lambada_openai_acc_all.svg'
set title 'SmolLM2-135M-Instruct.Q4_1: lambada_openai accuracy vs weight bits (all items)'
set grid
set key below box
set datafile missing '?'
set ylabel 'accuracy, % (higher is better)'
set xrange [2.5:3.5]
set xtics ('W3' 3)
$s0 << EOD
3 4.482825539
EOD
$s1 << EOD
3 6.054725403
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 6 ps 1.3 lc 1 dt 2 title 'gptq g128', \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc 1 dt 1 title 'gptq+nt g128 loss=dist;lr=1e-05;iters=1', \
     29.43916165 with lines lw 2 dt 3 lc rgb 'black' title 'fp (float)'
