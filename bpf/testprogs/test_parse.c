//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * test_parse: a wrapper that runs the packet parser alone, for the tests in
 * parse_test.go (BPF_PROG_TEST_RUN). It stores the key the parser built and
 * its verdict, counts drops like the datapath does, and returns TC_ACT_OK
 * for a parsed packet and TC_ACT_SHOT for one to drop.
 */
#include <linux/pkt_cls.h>

#include "parse.h"
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

struct parse_result {
	struct ovsbpf_key key;
	enum ovsbpf_drop verdict;
	__u16 l3_off, l4_off; /* where the parser found the L3 and L4 headers */
};

/* The last packet's result: one slot is enough, the tests run one packet
 * at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct parse_result);
} result SEC(".maps");

/* Force BTF for the parser's bounds, which the tests read (bpf2go -type). */
const enum ovsbpf_parse_limit *unused_parse_limit __attribute__((unused));

SEC("tc")
int test_parse(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct parse_result *r = bpf_map_lookup_elem(&result, &zero);
	if (!r)
		return TC_ACT_SHOT;
	__builtin_memset(r, 0, sizeof(*r));
	struct pkt p;
	r->verdict = parse_packet(skb, &r->key, &p);
	r->l3_off = p.l3_off;
	r->l4_off = p.l4_off;
	if (r->verdict != OVSBPF_PARSE_OK) {
		count_drop(r->verdict);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}
