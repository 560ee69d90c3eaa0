//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * hashcost: what a hash-map lookup costs in a TC program, by key size.
 *
 * The megaflow cache looks a packet up once per installed mask (tuple space
 * search), so the size of the hashed key decides how many masks the
 * datapath can afford per packet. These programs do 1 or 8 lookups of a
 * key of 48, 64, 96 or 144 bytes; BenchmarkHashCost in hashcost_test.go
 * runs them with BPF_PROG_TEST_RUN beside an empty program, and
 * docs/datapath-design.md uses the ratios to size the flow key.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/*
 * One hash map per key size. The benchmark fills each with 10,000 entries,
 * including the keys looked up, so lookups hit in a table of realistic
 * size; 16,384 entries leave room for them without resizing concerns
 * (BPF hash maps preallocate max_entries).
 */
#define KEY_MAP(N)                                                  \
	struct key##N {                                             \
		__u8 b[N];                                          \
	};                                                          \
	struct {                                                    \
		__uint(type, BPF_MAP_TYPE_HASH);                    \
		__uint(max_entries, 16384);                         \
		__type(key, struct key##N);                         \
		__type(value, __u64);                               \
	} keys##N SEC(".maps");

/*
 * LOOKUPS(N, L): L lookups of N-byte keys whose first byte is 0..L-1, as
 * tuple space search does L lookups of one packet under L masks. The sum of
 * the values keeps the compiler from dropping the lookups.
 */
#define LOOKUPS(N, L)                                               \
	SEC("tc")                                                   \
	int lookup##N##x##L(struct __sk_buff *skb)                  \
	{                                                           \
		struct key##N k = {};                               \
		__u64 sum = 0;                                      \
		_Pragma("unroll") for (int i = 0; i < L; i++)       \
		{                                                   \
			k.b[0] = i;                                 \
			__u64 *v = bpf_map_lookup_elem(&keys##N, &k); \
			if (v)                                      \
				sum += *v;                          \
		}                                                   \
		return sum ? TC_ACT_OK : TC_ACT_SHOT;               \
	}

KEY_MAP(48)
KEY_MAP(64)
KEY_MAP(96)
KEY_MAP(144)

LOOKUPS(48, 1)
LOOKUPS(48, 8)
LOOKUPS(64, 1)
LOOKUPS(64, 8)
LOOKUPS(96, 1)
LOOKUPS(96, 8)
LOOKUPS(144, 1)
LOOKUPS(144, 8)

/* The floor: a TC program that does nothing. */
SEC("tc")
int empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
