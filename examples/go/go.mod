module example.invalid/nanu

go 1.19
