// Package bpf holds ovsbpf's eBPF C sources and the Go bindings bpf2go
// generates from them. The compiled objects are committed, so building the
// project needs no C compiler; `make generate` rebuilds them with clang-19
// and CI fails when the committed objects do not match the sources.
//
// Loading, pinning and attaching the programs is package datapath's job;
// this package only embeds them.
package bpf

//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package bpf -output-dir . -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu" HashCost hashcost.c
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package bpf -output-dir . -type ovsbpf_key -type ovsbpf_drop -type parse_result -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu -Iinclude" TestParse test_parse.c
