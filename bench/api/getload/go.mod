module hub/bench/api/getload

go 1.21
