//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * test_ct: a wrapper that runs connection tracking (bpf/include/ct.h) on
 * one frame, for the tests in package ct (BPF_PROG_TEST_RUN). It parses
 * the frame, runs ovsbpf_ct with the params index the test puts in cb[0],
 * and stores the key's conntrack fields and ovsbpf_ct's return value in
 * ct_result. It returns TC_ACT_OK, or TC_ACT_SHOT for a frame the parser
 * refuses.
 */
#include <linux/pkt_cls.h>

#include "parse.h"
#include "ct.h"

char LICENSE[] SEC("license") = "GPL";

struct ct_test_result {
	__u8 ct_state;
	__u8 pad;
	__u16 ct_zone;
	__u32 ct_mark;
	__u8 ct_label[16];
	__s32 ret; /* ovsbpf_ct's return value */
};

/* The last packet's result: one slot, the tests run one packet at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_test_result);
} ct_result SEC(".maps");

SEC("tc")
int test_ct(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ct_test_result *r = bpf_map_lookup_elem(&ct_result, &zero);
	if (!r)
		return TC_ACT_SHOT;
	__builtin_memset(r, 0, sizeof(*r));
	struct ovsbpf_key key = {};
	struct pkt p;
	if (parse_packet(skb, &key, &p) != OVSBPF_PARSE_OK)
		return TC_ACT_SHOT;
	r->ret = ovsbpf_ct(skb, &key, &p, skb->cb[0]);
	r->ct_state = key.n.ct_state;
	r->ct_zone = key.n.ct_zone;
	r->ct_mark = key.n.ct_mark;
	__builtin_memcpy(r->ct_label, key.w.ct_label, 16);
	return TC_ACT_OK;
}
