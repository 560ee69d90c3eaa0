// Package testprogs holds the eBPF programs that exist only to test and
// measure the datapath's C, never to forward: test_parse runs the packet
// parser (bpf/include/parse.h) alone under BPF_PROG_TEST_RUN, and hashcost
// times hash-map lookups by key size beside an empty program, the floor
// the datapath benchmarks divide by, and benchcycle gives each repeat of a
// test run another TCP 5-tuple before it tail-calls the datapath (the
// many-flows benchmark). They sit apart from package bpf so
// that ovsbpfd, which imports bpf, does not embed them.
//
// Each Load*Objects call loads fresh programs and maps; the caller closes
// them, and nothing here is pinned.
package testprogs

//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package testprogs -output-dir . -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu" HashCost hashcost.c
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package testprogs -output-dir . -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu" BenchCycle benchcycle.c
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package testprogs -output-dir . -type ovsbpf_key -type ovsbpf_drop -type ovsbpf_parse_limit -type parse_result -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu -I../include" TestParse test_parse.c
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package testprogs -output-dir . -type ct_test_result -cflags "-O2 -g -mcpu=v3 -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu -I../include" TestCt test_ct.c
//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package testprogs -output-dir . -type shape_record -cflags "-O2 -g -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu" SkbShape skb_shape.c
