// Package bpf holds ovsbpf's eBPF C sources and the Go bindings bpf2go
// generates from them. The compiled objects are committed, so building the
// project needs no C compiler; `make generate` rebuilds them with clang-19
// and CI fails when the committed objects do not match the sources.
//
// Loading, pinning and attaching the programs is package datapath's job;
// this package only embeds them. Programs that exist only to test or
// measure this C live in bpf/testprogs, so a binary that imports this
// package (ovsbpfd) carries only the datapath.
package bpf

//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package bpf -output-dir . -type ovsbpf_key -type ovsbpf_narrow -type ovsbpf_wide -type ovsbpf_mask -type ovsbpf_mask_order -type ovsbpf_actions -type ovsbpf_stats -type ovsbpf_emc_entry -type ovsbpf_action -type ovsbpf_action_type -type ovsbpf_port -type ovsbpf_upcall -type ovsbpf_upcall_reason -type ovsbpf_counter -type ovsbpf_drop -type ovsbpf_limit -type ovsbpf_table_size -type ovsbpf_frag -type ovsbpf_vlan -type ovsbpf_port_flag -type ovsbpf_exec_meta -type ovsbpf_ct_params -cflags "-O2 -g -mcpu=v3 -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu -Iinclude" Datapath datapath.c
