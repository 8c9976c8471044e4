module hub/bench/loadgen

go 1.22
