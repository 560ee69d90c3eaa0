/* SPDX-License-Identifier: GPL-2.0 */
/* Drop counters: one per enum ovsbpf_drop reason, per CPU so that counting
 * never contends. ovsbpfctl sums them over CPUs. */
#ifndef OVSBPF_DROPS_H
#define OVSBPF_DROPS_H

#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_DROP__MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);
	if (n)
		*n += 1;
}

#endif
