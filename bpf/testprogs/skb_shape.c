//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * skb_shape: records how much of a packet lies in the skb's linear part.
 *
 * A test attaches it at TCX ingress ahead of the datapath to prove that
 * the skb it built has headers outside the linear part (BPF_PROG_TEST_RUN
 * only ever builds linear skbs): for each packet of at least min_len bytes
 * it stores the packet's length and its linear length, data_end - data,
 * and counts it. It never changes the packet and hands it on to the next
 * program (TC_ACT_UNSPEC, which TCX calls TCX_NEXT).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct shape_record {
	__u32 len;    /* skb->len of the last packet recorded */
	__u32 linear; /* ...and data_end - data */
	__u32 seen;   /* packets recorded */
};

/* One slot: the tests send one kind of packet at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shape_record);
} shape SEC(".maps");

/* Set at load time: smaller packets (ARP, the test's other traffic) are
 * not recorded. */
volatile const __u32 min_len = 0;

SEC("tc")
int skb_shape(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct shape_record *s;

	if (skb->len < min_len)
		return TC_ACT_UNSPEC;
	s = bpf_map_lookup_elem(&shape, &zero);
	if (s) {
		s->len = skb->len;
		s->linear = skb->data_end - skb->data;
		__sync_fetch_and_add(&s->seen, 1);
	}
	return TC_ACT_UNSPEC;
}
