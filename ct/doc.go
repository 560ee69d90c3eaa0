// Package ct owns connection tracking's user-space side: the layout of the
// eBPF conntrack tables (generated from bpf/include/ct.h, their one
// definition), the ct() action's parameters, and the commands over the
// tables: dump, flush, statistics, the connection limit, the liberal TCP
// switch, timeouts and counters, in Open vSwitch's dpctl formats.
//
// The tables themselves live in the eBPF object that includes ct.h (the
// datapath, or a test program): a Table wraps that object's maps and owns
// none of them. Closing the maps is the object's owner's job; a Table
// holds no file descriptors of its own and needs no Close.
package ct

//go:generate go tool bpf2go -cc clang-19 -target bpfel -go-package ct -output-dir . -type ovsbpf_ct_state -type ovsbpf_ct_param_flag -type ovsbpf_ct_conn_flag -type ovsbpf_ct_config_flag -type ovsbpf_tcp_state -type ovsbpf_ct_timeout -type ovsbpf_ct_timeout_default -type ovsbpf_ct_counter -type ovsbpf_ct_limit -type ovsbpf_tcp_wscale -type ovsbpf_ct_tuple4 -type ovsbpf_ct_ref -type ovsbpf_tcp_peer -type ovsbpf_ct_conn4 -type ovsbpf_ct_params -type ovsbpf_ct_config -type ovsbpf_ct_alloc -cflags "-O2 -g -mcpu=v3 -Wall -Werror -fdebug-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu -I../bpf/include" layout layout.c
