//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * benchcycle: a benchmark harness, not part of the datapath. BPF_PROG_TEST_RUN
 * repeats one frame; to measure the datapath when many distinct flows pass
 * (more than the exact-match cache holds), this program gives each repeat
 * another TCP 5-tuple and then tail-calls the program under test (slot 0 of
 * target: the datapath's ovsbpf_ingress, or an empty program to measure
 * this harness itself, which the benchmark subtracts).
 *
 * Repeat i (counted per CPU, from 0) gets TCP source port
 * 1024 + i % sports and destination port dports[i / sports % ndports]:
 * sports * ndports distinct tuples, cycled in order. The frame must be
 * Ethernet, IPv4 without options, TCP. The TCP checksum is left stale: the
 * datapath does not check it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

/* The repeat counter, per CPU: a test run stays on one CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cursor SEC(".maps");

/* Set at load time. */
volatile const __u32 sports = 50000;
volatile const __u32 ndports = 2;
volatile const __u16 dports[4] = {80, 443, 22, 8080};

SEC("tc")
int cycle(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct tcphdr *tcp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	if ((void *)(tcp + 1) > end)
		return TC_ACT_SHOT;
	__u32 zero = 0, *c = bpf_map_lookup_elem(&cursor, &zero);
	if (!c || !sports || !ndports)
		return TC_ACT_SHOT;
	__u32 i = (*c)++;
	__u32 d = (i / sports) % ndports;
	tcp->source = bpf_htons(1024 + i % sports);
	tcp->dest = bpf_htons(dports[d & 3]);
	bpf_tail_call(skb, &target, 0);
	return TC_ACT_SHOT; /* no program in the slot */
}
