//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * ovsbpf_ingress: the datapath's fast path, attached with TCX to the host
 * side of every VIF's veth pair.
 *
 * For each packet: find the port it came in on, parse it into a flow key,
 * look the key up in the megaflow cache, and either run the cached actions
 * (rewrite, output) or, on a miss, send the key and the frame to user space
 * through a ring buffer and drop the packet; the slow path installs the
 * megaflow and delivers the packet itself.
 */
#include <linux/pkt_cls.h>

#include "parse.h"
#include "drops.h"
#include "flow.h"
#include "ct.h"

char LICENSE[] SEC("license") = "GPL";

/* Sizes of the tables below that user space must know too; each is
 * explained at its map. An enum, so that bpf2go -type exports them. */
enum ovsbpf_table_size {
	OVSBPF_IFINDEX_SLOTS = 65536,
	OVSBPF_EMC_SLOTS = 4096,
	OVSBPF_EXEC_SLOTS = 64,
	OVSBPF_UPCALL_RING_BYTES = 4 << 20,
};

/* ifindex of a host-side interface -> its datapath port number (0: not a
 * port). An array, not a hash: this lookup is on every packet, and an
 * inlined array lookup costs a nanosecond where a hash lookup of the
 * ifindex costs about 20. A namespace numbers its interfaces from 1 up, so
 * 65,536 slots (256 KiB) cover all but the longest-lived hosts; larger
 * indexes go to the hash below. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_IFINDEX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} port_of_ifindex SEC(".maps");

/* ifindex (OVSBPF_IFINDEX_SLOTS or more) -> datapath port number. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OVSBPF_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} port_of_big_ifindex SEC(".maps");

static __always_inline __u32 port_of(__u32 ifindex)
{
	__u32 *no = ifindex < OVSBPF_IFINDEX_SLOTS ? bpf_map_lookup_elem(&port_of_ifindex, &ifindex)
						   : bpf_map_lookup_elem(&port_of_big_ifindex, &ifindex);
	return no ? *no : 0;
}

/* Datapath port number -> where to send. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_port);
} ports SEC(".maps");

/* The installed masks. A slot whose last megaflow went away is marked
 * unused and skipped, and reused by the next new mask, so slot numbers (and
 * with them the keys of the flows under every other mask) never move. A
 * mask's bits.mask_slot holds its slot number, which the masked key takes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_MASKS);
	__type(key, __u32);
	__type(value, struct ovsbpf_mask);
} masks SEC(".maps");

/* One entry: the slots the tuple space search tries, in order (see struct
 * ovsbpf_mask_order). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_mask_order);
} mask_order SEC(".maps");

/* Hits of the tuple space search under each mask slot, per CPU: what the
 * search order follows. Exact-match cache hits are not counted; they do
 * not search. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_MAX_MASKS);
	__type(key, __u32);
	__type(value, __u64);
} mask_hits SEC(".maps");

/* Megaflows: the masked narrow key, with the mask's slot in mask_slot, ->
 * the flow id. Preallocated, so a lookup or an update never allocates. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OVSBPF_MAX_FLOWS);
	__type(key, struct ovsbpf_narrow);
	__type(value, __u32);
} flows SEC(".maps");

/* Flow id -> its action list. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_FLOWS + 1); /* flow id 0 is never used */
	__type(key, __u32);
	__type(value, struct ovsbpf_actions);
} flow_actions SEC(".maps");

/* Flow id -> packets and bytes, per CPU so that a hit never contends on a
 * shared cache line; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_MAX_FLOWS + 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_stats);
} flow_stats SEC(".maps");

/* Flow id -> bpf_jiffies64() at its last hit on any CPU. Shared rather
 * than per CPU, and memory-mapped, so that the revalidator reads the last
 * use of every flow from memory each sweep instead of copying every CPU's
 * counters out with syscalls (1.2 ms for 3,000 flows, and it grows with
 * them). A hit writes only when jiffies moved, so a busy flow's line is
 * written at most HZ times a second whatever its packet rate. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_FLOWS + 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} flow_used SEC(".maps");

/* The exact-match cache: per CPU, direct mapped by a hash of the narrow
 * key. 4,096 slots of 56 bytes (224 KiB a CPU) hold the working set of a
 * few thousand connections per CPU, as OVS's EMC does with 8,192. A
 * collision only costs the tuple space search. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_EMC_SLOTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_emc_entry);
} emc SEC(".maps");

/* Set at load time: 0 turns the exact-match cache off (to measure the
 * tuple space search alone, or to save its memory). */
volatile const __u32 emc_enabled = 1;

/* Upcalls to the slow path. 4 MiB holds about 2,400 full-size frames or
 * 18,000 small ones: a burst of new flows, while the handlers catch up. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, OVSBPF_UPCALL_RING_BYTES);
} upcalls SEC(".maps");

/* enum ovsbpf_counter, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Force BTF for the types Go needs (bpf2go -type). */
const enum ovsbpf_limit *unused_limit __attribute__((unused));
const enum ovsbpf_table_size *unused_table_size __attribute__((unused));
const enum ovsbpf_frag *unused_frag __attribute__((unused));
const enum ovsbpf_vlan *unused_vlan __attribute__((unused));
const enum ovsbpf_port_flag *unused_port_flag __attribute__((unused));
const enum ovsbpf_action_type *unused_action_type __attribute__((unused));
const enum ovsbpf_upcall_reason *unused_upcall_reason __attribute__((unused));
const enum ovsbpf_counter *unused_counter __attribute__((unused));
const struct ovsbpf_upcall *unused_upcall __attribute__((unused));
const struct ovsbpf_emc_entry *unused_emc_entry __attribute__((unused));
const enum ovsbpf_drop *unused_drop __attribute__((unused));

static __always_inline void count_n(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += n;
}

static __always_inline void count(__u32 c)
{
	count_n(c, 1);
}

/* An upcall is built here, then copied to the ring at its real size: a
 * 64-byte frame takes about 230 bytes of ring, not the 1,700 of a record
 * with room for a full frame, so a burst of small new flows fits. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_upcall);
} upcall_scratch SEC(".maps");

static __always_inline void upcall(struct __sk_buff *skb, const struct ovsbpf_key *key, __u32 reason)
{
	__u32 zero = 0;
	struct ovsbpf_upcall *u = bpf_map_lookup_elem(&upcall_scratch, &zero);
	if (!u)
		return;
	u->reason = reason;
	u->ifindex = skb->ingress_ifindex;
	u->frame_len = skb->len;
	u->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&u->key, key, sizeof(*key));
	__u32 len = skb->len;
	if (len > OVSBPF_UPCALL_MAX_FRAME)
		len = OVSBPF_UPCALL_MAX_FRAME;
	if (len == 0 || bpf_skb_load_bytes(skb, 0, u->frame, len) < 0)
		len = 0;
	u->len = len;
	__u64 size = offsetof(struct ovsbpf_upcall, frame) + len;
	if (size > sizeof(*u))
		size = sizeof(*u);
	if (bpf_ringbuf_output(&upcalls, u, size, 0) < 0)
		count(OVSBPF_CNT_UPCALL_LOST);
}

/* emc_index hashes the whole narrow key into an exact-match cache slot:
 * multiply-and-fold over its six words, cheap next to a hash-map lookup. */
static __always_inline __u32 emc_index(const struct ovsbpf_narrow *key)
{
	const __u64 *k = (const __u64 *)key;
	__u64 h = k[0];
	h = (h ^ k[1]) * 0x9E3779B97F4A7C15ULL;
	h = (h ^ k[2]) * 0x9E3779B97F4A7C15ULL;
	h = (h ^ k[3]) * 0x9E3779B97F4A7C15ULL;
	h = (h ^ k[4]) * 0x9E3779B97F4A7C15ULL;
	h = (h ^ k[5]) * 0x9E3779B97F4A7C15ULL;
	return (h >> 40) & (OVSBPF_EMC_SLOTS - 1);
}

static __always_inline int narrow_equal(const struct ovsbpf_narrow *a, const struct ovsbpf_narrow *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5])) == 0;
}

/* The mask_slot byte of the narrow key's first 64-bit word, all ones (the
 * target is little-endian). */
#define MASK_SLOT_BITS (0xffULL << (8 * offsetof(struct ovsbpf_narrow, mask_slot)))
_Static_assert(offsetof(struct ovsbpf_narrow, mask_slot) < 8, "mask_slot must be in the key's first word");

/* tss_lookup is the tuple space search: the masks are tried in the order
 * mask_order lists them, and the first under which the masked key is
 * installed wins. */
static __always_inline __u32 *tss_lookup(const struct ovsbpf_narrow *key)
{
	struct ovsbpf_narrow masked __attribute__((aligned(8)));
	const __u64 *k = (const __u64 *)key;
	__u64 *o = (__u64 *)&masked;

	/* The counter stays in a register so the verifier sees its bound;
	 * only a copy goes to the stack for the map lookup. */
	__u32 zero = 0;
	struct ovsbpf_mask_order *order = bpf_map_lookup_elem(&mask_order, &zero);
	if (!order)
		return NULL;
	__u32 n = order->n;
	int i, probes = 0;

	for (i = 0; i < OVSBPF_MAX_MASKS; i++) {
		if (i >= n)
			break;
		/* A slot number is below OVSBPF_MAX_MASKS, a power of two,
		 * whatever the list holds. */
		__u32 slot = order->slot[i] & (OVSBPF_MAX_MASKS - 1);
		struct ovsbpf_mask *m = bpf_map_lookup_elem(&masks, &slot);
		if (!m)
			break;
		if (!m->used)
			continue;
		probes++;
		const __u64 *b = (const __u64 *)&m->bits;
		/* A mask holds its own slot number in mask_slot, and the AND
		 * takes it from there (a packet key's mask_slot is 0): the
		 * word is stored once. A byte store of the slot after the
		 * word's made the hash's first load, which spans both, wait
		 * for both to retire (10 ns a probe); ORing the slot in from
		 * the loop doubled the verifier's work on the program. */
		__u64 w0 = (k[0] | MASK_SLOT_BITS) & b[0];
		((volatile __u32 *)o)[0] = (__u32)w0;
		((volatile __u32 *)o)[1] = (__u32)(w0 >> 32);
		o[1] = k[1] & b[1];
		o[2] = k[2] & b[2];
		o[3] = k[3] & b[3];
		o[4] = k[4] & b[4];
		o[5] = k[5] & b[5];
		__u32 *id = bpf_map_lookup_elem(&flows, &masked);
		if (id) {
			count_n(OVSBPF_CNT_MASK_PROBES, probes);
			__u64 *hits = bpf_map_lookup_elem(&mask_hits, &slot);
			if (hits)
				*hits += 1;
			return id;
		}
	}
	count_n(OVSBPF_CNT_MASK_PROBES, probes);
	return NULL;
}

/* megaflow_find returns the action list of the megaflow that covers key,
 * and its id, or NULL on a miss. The exact-match cache answers first; a
 * tuple space search hit fills it. */
static __always_inline struct ovsbpf_actions *megaflow_find(const struct ovsbpf_narrow *key, __u32 *id_out)
{
	struct ovsbpf_emc_entry *e = NULL;
	struct ovsbpf_actions *acts;

	if (emc_enabled) {
		__u32 slot = emc_index(key);
		e = bpf_map_lookup_elem(&emc, &slot);
		if (e && e->gen && narrow_equal(&e->key, key)) {
			__u32 id = e->id;
			acts = bpf_map_lookup_elem(&flow_actions, &id);
			/* A stale slot (the flow was deleted or replaced)
			 * no longer matches its list's gen. */
			if (acts && acts->gen == e->gen) {
				count(OVSBPF_CNT_EMC_HIT);
				*id_out = id;
				return acts;
			}
		}
	}

	__u32 *idp = tss_lookup(key);
	if (!idp)
		return NULL;
	__u32 id = *idp;
	acts = bpf_map_lookup_elem(&flow_actions, &id);
	if (!acts || !acts->gen)
		return NULL; /* an id user space has not filled in: treat as a miss */
	count(OVSBPF_CNT_MASK_HIT);
	if (e) {
		__builtin_memcpy(&e->key, key, sizeof(*key));
		e->id = id;
		e->gen = acts->gen;
	}
	*id_out = id;
	return acts;
}

/* Offsets of the checksums a rewrite must fix. */
#define IPV4_CSUM_OFF 10
#define IPV4_TTL_OFF 8
#define IPV4_SRC_OFF 12
#define IPV4_DST_OFF 16
#define IPV6_HOPLIMIT_OFF 7
#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6

/* l4_csum_flags returns the flags and checksum offset for fixing the L4
 * checksum after a change of size bytes, or -1 if there is none to fix. */
static __always_inline int l4_csum_off(const struct ovsbpf_key *key, const struct pkt *p, __u64 *flags)
{
	if (!p->l4_off || (key->n.nw_frag & OVSBPF_FRAG_LATER))
		return -1;
	switch (key->n.nw_proto) {
	case IPPROTO_TCP:
		*flags = 0;
		return p->l4_off + TCP_CSUM_OFF;
	case IPPROTO_UDP:
		*flags = BPF_F_MARK_MANGLED_0; /* a zero UDP checksum means none */
		return p->l4_off + UDP_CSUM_OFF;
	}
	return -1;
}

static __always_inline int set_ipv4_addr(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, int dst, const __u8 *data)
{
	if (key->n.eth_type != bpf_htons(ETH_P_IP) || !p->l3_off)
		return -1;
	__be32 new = *(const __be32 *)data;
	__be32 old = dst ? key->n.nw_dst : key->n.nw_src;
	__u64 flags;
	int csum = l4_csum_off(key, p, &flags);
	if (csum >= 0 && bpf_l4_csum_replace(skb, csum, old, new, flags | BPF_F_PSEUDO_HDR | 4) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, p->l3_off + IPV4_CSUM_OFF, old, new, 4) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, p->l3_off + (dst ? IPV4_DST_OFF : IPV4_SRC_OFF), &new, 4, 0) < 0)
		return -1;
	if (dst)
		key->n.nw_dst = new;
	else
		key->n.nw_src = new;
	return 0;
}

static __always_inline int set_tp_port(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, int dst, const __u8 *data)
{
	__u64 flags;
	int csum = l4_csum_off(key, p, &flags);
	if (csum < 0)
		return -1; /* no TCP or UDP header to rewrite */
	__be16 new = *(const __be16 *)data;
	__be16 old = dst ? key->n.tp_dst : key->n.tp_src;
	if (bpf_l4_csum_replace(skb, csum, old, new, flags | 2) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, p->l4_off + (dst ? 2 : 0), &new, 2, 0) < 0)
		return -1;
	if (dst)
		key->n.tp_dst = new;
	else
		key->n.tp_src = new;
	return 0;
}

/* dec_ttl returns 1 when the TTL would expire: the slow path answers. */
static __always_inline int dec_ttl(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p)
{
	__u8 ttl = key->n.nw_ttl;
	if (!p->l3_off || (key->n.eth_type != bpf_htons(ETH_P_IP) && key->n.eth_type != bpf_htons(ETH_P_IPV6)))
		return -1; /* no TTL to decrement */
	if (ttl <= 1)
		return 1;
	__u8 new = ttl - 1;
	if (key->n.eth_type == bpf_htons(ETH_P_IP)) {
		/* The TTL shares a 16-bit checksum word with the protocol. */
		__be16 old_w = bpf_htons((__u16)ttl << 8 | key->n.nw_proto);
		__be16 new_w = bpf_htons((__u16)new << 8 | key->n.nw_proto);
		if (bpf_l3_csum_replace(skb, p->l3_off + IPV4_CSUM_OFF, old_w, new_w, 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, p->l3_off + IPV4_TTL_OFF, &new, 1, 0) < 0)
			return -1;
	} else if (key->n.eth_type == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_store_bytes(skb, p->l3_off + IPV6_HOPLIMIT_OFF, &new, 1, 0) < 0)
			return -1;
	} else {
		return -1;
	}
	key->n.nw_ttl = new;
	return 0;
}

/* execute's verdict when the list ends in recirc: look up again. */
#define EXEC_RECIRC 1000

/* vlan_moved keeps the header offsets right after a VLAN push or pop:
 * the kernel moves bytes in the frame only when the tag it adds or takes
 * is in the frame rather than in skb metadata. */
static __always_inline void vlan_moved(struct pkt *p, int delta)
{
	if (p->l3_off)
		p->l3_off += delta;
	if (p->l4_off)
		p->l4_off += delta;
}

/* Where an action list's pending output stands between blocks. An output
 * is held back until the next action or the list's end, so the last output,
 * if no action follows it, takes the packet itself and only the others cost
 * a clone. */
struct exec_state {
	__u32 out_ifindex; /* the output held back; 0: none */
	__u32 out_flags;   /* its port's OVSBPF_PORT_* */
	__u32 start;       /* the block's first action to run: past a ct */
	__u32 ct_params;   /* the ct action exec_block stopped at: its ct_params index */
};

/* flush sends the held-back output as a clone of the packet as it is now:
 * before an action changes the packet, so that output sees the packet as
 * the actions before it left it (OVS semantics), not as later ones do. */
static __always_inline void flush(struct __sk_buff *skb, struct exec_state *st)
{
	if (st->out_ifindex) {
		bpf_clone_redirect(skb, st->out_ifindex, 0);
		st->out_ifindex = 0;
	}
}

/* exec_block's verdicts besides TC_ACT_SHOT and EXEC_RECIRC: the block
 * ended the list, or the list goes on in the next block. */
#define EXEC_DONE 1001
#define EXEC_NEXT 1002
/* ...or the block stopped at a ct action, which execute runs (st->ct_params)
 * before it resumes the block at st->start. */
#define EXEC_CT 1004

/* exec_block runs one block of an action list (OVSBPF_MAX_ACTIONS actions).
 *
 * It is a global (non-static, not inlined) function so the verifier checks
 * it once on its own instead of once for every path through the parser and
 * every block of the list: inlined, the program took 640,000 of the
 * 1,000,000 instructions the verifier allows; apart, about 41,000. */
__attribute__((noinline)) int exec_block(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, const struct ovsbpf_actions *blk, struct exec_state *st)
{
	if (!skb || !key || !p || !blk || !st) /* a global function checks its pointers */
		return TC_ACT_SHOT;

	for (int i = 0; i < OVSBPF_MAX_ACTIONS; i++) {
		if (i < st->start)
			continue;
		const struct ovsbpf_action *a = &blk->a[i];
		int err = 0;
		if (a->type != OVSBPF_ACTION_OUTPUT && a->type != OVSBPF_ACTION_END)
			/* The output waiting for a later one leaves now, before
			 * this action changes the packet (or ends the list): each
			 * output sends the packet as the actions before it left
			 * it, as in Open vSwitch. */
			flush(skb, st);
		switch (a->type) {
		case OVSBPF_ACTION_END:
			return EXEC_DONE;
		case OVSBPF_ACTION_OUTPUT: {
			__u32 port_no = a->port;
			struct ovsbpf_port *port = bpf_map_lookup_elem(&ports, &port_no);
			if (!port || !port->ifindex) {
				err = -1;
				break;
			}
			flush(skb, st);
			st->out_ifindex = port->ifindex;
			st->out_flags = port->flags;
			break;
		}
		case OVSBPF_ACTION_SET_ETH_SRC:
			err = bpf_skb_store_bytes(skb, 6, a->data, 6, 0);
			if (!err)
				__builtin_memcpy(key->n.eth_src, a->data, 6);
			break;
		case OVSBPF_ACTION_SET_ETH_DST:
			err = bpf_skb_store_bytes(skb, 0, a->data, 6, 0);
			if (!err)
				__builtin_memcpy(key->n.eth_dst, a->data, 6);
			break;
		case OVSBPF_ACTION_SET_IPV4_SRC:
		case OVSBPF_ACTION_SET_IPV4_DST:
			err = set_ipv4_addr(skb, key, p, a->type == OVSBPF_ACTION_SET_IPV4_DST, a->data);
			break;
		case OVSBPF_ACTION_SET_TP_SRC:
		case OVSBPF_ACTION_SET_TP_DST:
			err = set_tp_port(skb, key, p, a->type == OVSBPF_ACTION_SET_TP_DST, a->data);
			break;
		case OVSBPF_ACTION_DEC_TTL:
			err = dec_ttl(skb, key, p);
			if (err == 1) {
				/* The slow path sends ICMP time exceeded. */
				upcall(skb, key, OVSBPF_UPCALL_TTL);
				return TC_ACT_SHOT;
			}
			break;
		case OVSBPF_ACTION_PUSH_VLAN: {
			int in_frame = skb->vlan_present; /* pushed into the frame */
			err = bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), a->arg & 0xefff);
			if (!err) {
				if (in_frame)
					vlan_moved(p, 4);
				key->n.vlan_tci = bpf_htons((a->arg & 0xefff) | OVSBPF_VLAN_PRESENT);
			}
			break;
		}
		case OVSBPF_ACTION_POP_VLAN: {
			int in_frame = !skb->vlan_present; /* popped from the frame */
			err = bpf_skb_vlan_pop(skb);
			if (!err) {
				if (in_frame && key->n.vlan_tci)
					vlan_moved(p, -4);
				key->n.vlan_tci = 0;
			}
			break;
		}
		case OVSBPF_ACTION_SET_ARP: {
			/* OVN's ARP responder rewrites op, sha, spa, tha and
			 * tpa: 22 of the 28 bytes of an Ethernet/IPv4 ARP
			 * header, which has no checksum. */
			/* n is 1..8 by construction, which the verifier
			 * tracks more reliably than a range check. */
			__u32 off = a->arg & 0x1f, n = ((a->arg >> 8) & 7) + 1;
			if (key->n.eth_type != bpf_htons(ETH_P_ARP) || !p->l3_off || off + n > 28) {
				err = -1;
				break;
			}
			err = bpf_skb_store_bytes(skb, p->l3_off + off, a->data, n, 0);
			break;
		}
		case OVSBPF_ACTION_USERSPACE:
			upcall(skb, key, OVSBPF_UPCALL_ACTION);
			break;
		case OVSBPF_ACTION_CT:
			/* arg indexes ct_params, the conntrack parameters
			 * (zone, commit, mark and label writes) user space
			 * writes before any megaflow names them. execute runs
			 * conntrack (ct_action), not this block: called from
			 * here, ct's stack would sit on top of this function's
			 * and pass the verifier's 512 bytes. The output held
			 * back has left (above), so it saw the packet before
			 * ct. */
			st->ct_params = a->arg;
			st->start = i + 1;
			return EXEC_CT;
		case OVSBPF_ACTION_RECIRC:
			key->n.recirc_id = a->arg;
			return EXEC_RECIRC;
		default:
			err = -1;
		}
		if (err) {
			/* A rewrite that fails leaves the packet half changed:
			 * never send that anywhere. */
			count(OVSBPF_CNT_ACTION_ERROR);
			return TC_ACT_SHOT;
		}
	}
	return EXEC_NEXT;
}

/* Blocks for megaflows' lists beyond their first: one for every eight
 * flows. A flood to 256 ports takes 31, so at the default size 800 such
 * floods fit, and the whole pool takes 3.4 MB. */
#define ACTION_POOL_BLOCKS (OVSBPF_MAX_FLOWS / 8)

/* Blocks of action lists longer than one block. Index 0 is none; 1 up to
 * the pool size go to megaflows (user space sizes the pool at load time,
 * from its flow limit, through max_entries); above them each exec_actions
 * slot has OVSBPF_MAX_ACTION_BLOCKS - 1 of its own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 + ACTION_POOL_BLOCKS + OVSBPF_EXEC_SLOTS * (OVSBPF_MAX_ACTION_BLOCKS - 1));
	__type(key, __u32);
	__type(value, struct ovsbpf_actions);
} action_blocks SEC(".maps");

/* execute runs a megaflow's action list, block by block. Every output but
 * the last goes out as a clone (bpf_clone_redirect), sent before any later
 * action changes the packet; the last takes the packet itself. No output:
 * drop.
 *
 * Why a bounded loop over a global function, not bpf_loop: the verifier
 * checks exec_block once, whatever calls it, so this loop costs it only a
 * few instructions per block (OVSBPF_MAX_ACTION_BLOCKS of them), where one
 * loop over all 512 actions would have it walk the switch 512 times.
 * bpf_loop would check its callback once too, but calls it indirectly once
 * per action and hands it the skb, the key and this state only through a
 * context struct on the stack. A list of 8 actions costs what it did
 * before (one call); each further block costs a call and an array lookup,
 * small beside the clone each output costs.
 *
 * It is global too, for the reason exec_block is. clone_all is for
 * ovsbpf_execute: see there. */
/* ct_action runs the conntrack action with ct_params index params on the
 * packet: ovsbpf_ct (ct.h) tracks it and fills the key's conntrack fields.
 * Global, so the verifier checks the tracker once, and called from execute,
 * so its stack does not sit on exec_block's. */
__attribute__((noinline)) int ct_action(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, __u32 params)
{
	if (!skb || !key || !p)
		return -1;
	return ovsbpf_ct(skb, key, p, params);
}

/* Conntrack actions one action list may hold: as many as it has blocks,
 * which OVN's longest lists (a commit in each of several zones, then the
 * ct before a recirculation) stay far below. */
#define MAX_CT_PER_LIST OVSBPF_MAX_ACTION_BLOCKS

__attribute__((noinline)) int execute(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, struct ovsbpf_actions *acts, int clone_all)
{
	struct exec_state st = {};
	const struct ovsbpf_actions *blk = acts;

	if (!skb || !key || !p || !acts)
		return TC_ACT_SHOT;

	for (int b = 0; b < OVSBPF_MAX_ACTION_BLOCKS + MAX_CT_PER_LIST; b++) {
		int r = exec_block(skb, key, p, blk, &st);
		if (r == EXEC_CT) {
			if (ct_action(skb, key, p, st.ct_params) < 0) {
				count(OVSBPF_CNT_ACTION_ERROR);
				return TC_ACT_SHOT;
			}
			continue; /* the same block, from st.start */
		}
		st.start = 0;
		if (r == EXEC_DONE)
			goto done;
		if (r != EXEC_NEXT)
			return r;
		__u32 next = blk->next;
		if (!next)
			goto done;
		blk = bpf_map_lookup_elem(&action_blocks, &next);
		if (!blk) {
			count(OVSBPF_CNT_ACTION_ERROR);
			return TC_ACT_SHOT;
		}
	}
	/* A chain longer than a list may be: user space never writes one. */
	count(OVSBPF_CNT_ACTION_ERROR);
	return TC_ACT_SHOT;
done:
	if (!st.out_ifindex)
		return TC_ACT_SHOT;
	if (clone_all) {
		/* A packet user space executes: BPF_PROG_TEST_RUN sends no
		 * redirects, so even the last output goes out as a clone. */
		bpf_clone_redirect(skb, st.out_ifindex, 0);
		return TC_ACT_SHOT;
	}
	if (st.out_flags & OVSBPF_PORT_PEER)
		return bpf_redirect_peer(st.out_ifindex, 0);
	return bpf_redirect(st.out_ifindex, 0);
}

/* pass verdicts besides TC_ACT_*: the megaflow found needs the executor
 * (its id in *id_out). */
#define PASS_EXECUTE 1003

/* lookup_pass is a pass through the megaflow cache up to the executor:
 * find the megaflow that covers the key (exact-match cache, then the tuple
 * space search), count its statistics and last use, and send a list that
 * is one output. It returns the packet's verdict, or PASS_EXECUTE with the
 * megaflow's id in *id_out when its list needs the executor. A miss sends
 * the packet to user space and drops it. clone_all: see execute. */
static __always_inline int lookup_pass(struct __sk_buff *skb, struct ovsbpf_key *key, int clone_all, __u32 *id_out)
{
	__u32 id = 0;
	struct ovsbpf_actions *acts = megaflow_find(&key->n, &id);
	if (!acts) {
		count(OVSBPF_CNT_MISS);
		upcall(skb, key, OVSBPF_UPCALL_MISS);
		return TC_ACT_SHOT;
	}
	struct ovsbpf_stats *st = bpf_map_lookup_elem(&flow_stats, &id);
	if (st) {
		st->packets++;
		st->bytes += skb->len;
	}
	__u64 *used = bpf_map_lookup_elem(&flow_used, &id);
	if (used) {
		/* jiffies, not nanoseconds: bpf_ktime_get_coarse_ns() costs
		 * 16 ns a packet here, bpf_jiffies64() nothing, and idle
		 * expiry needs no finer clock. */
		__u64 now = bpf_jiffies64();
		if (READ_ONCE(*used) != now)
			WRITE_ONCE(*used, now);
	}
	/* The commonest list, a switch's single output, skips the executor's
	 * call and loop: 15% of a cache hit's cost. */
	if (acts->a[0].type == OVSBPF_ACTION_OUTPUT && acts->a[1].type == OVSBPF_ACTION_END) {
		__u32 out = acts->a[0].port;
		struct ovsbpf_port *port = bpf_map_lookup_elem(&ports, &out);
		if (!port || !port->ifindex) {
			count(OVSBPF_CNT_ACTION_ERROR);
			return TC_ACT_SHOT;
		}
		if (clone_all) {
			bpf_clone_redirect(skb, port->ifindex, 0);
			return TC_ACT_SHOT;
		}
		if (port->flags & OVSBPF_PORT_PEER)
			return bpf_redirect_peer(port->ifindex, 0);
		return bpf_redirect(port->ifindex, 0);
	}
	*id_out = id;
	return PASS_EXECUTE;
}

/* run_pass is lookup_pass for every pass but a fast-path packet's first.
 *
 * How the passes are split, and why:
 *
 *  - Every pass after the first is a call of run_pass, a global function
 *    the verifier checks once, for the reason exec_block is: the callers'
 *    loops over OVSBPF_MAX_PASSES passes then cost it a few instructions a
 *    pass, where an inlined pass (with the search's loop over the masks)
 *    would be walked again for every pass, which held the passes to 4.
 *  - The first pass of a fast-path packet is inlined in ovsbpf_ingress all
 *    the same: a call and its return cost about 8 ns here (the kernel
 *    returns through a thunk, spec_rstack_overflow "Safe RET" on this AMD
 *    machine), and a cache hit whose one pass went through run_pass was
 *    11% slower.
 *  - run_pass does not run the executor: the verifier bounds the stack of
 *    a chain of calls at 512 bytes, and ovsbpf_ingress (its key and the
 *    inlined pass, 304 bytes), run_pass (120), execute (40) and exec_block
 *    (96) make 560. The caller runs the list instead, so the deepest chain
 *    is ovsbpf_ingress -> execute -> exec_block, 440 bytes, and the 72
 *    left are for conntrack below exec_block. */
__attribute__((noinline)) int run_pass(struct __sk_buff *skb, struct ovsbpf_key *key, int clone_all, __u32 *id_out)
{
	if (!skb || !key || !id_out)
		return TC_ACT_SHOT;
	return lookup_pass(skb, key, clone_all, id_out);
}

/* exec_flow runs the action list of megaflow id (lookup_pass's
 * PASS_EXECUTE). */
static __always_inline int exec_flow(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, __u32 id, int clone_all)
{
	struct ovsbpf_actions *acts = bpf_map_lookup_elem(&flow_actions, &id);
	if (!acts) {
		count(OVSBPF_CNT_ACTION_ERROR);
		return TC_ACT_SHOT;
	}
	return execute(skb, key, p, acts, clone_all);
}

/* The packet's key, per CPU: on the stack its 144 bytes would take the
 * chain of calls down to the conntrack tracker (execute, ct_action, the TCP
 * update) past the verifier's 512 bytes. A TC program runs to its end on
 * its CPU before that CPU runs it for another packet (a redirect or clone
 * queues the copy, it does not run the peer's ingress inline), so one slot
 * a CPU is enough. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_key);
} ingress_key SEC(".maps");

SEC("tc")
int ovsbpf_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ovsbpf_key *key = bpf_map_lookup_elem(&ingress_key, &zero);
	if (!key)
		return TC_ACT_SHOT;
	__u32 port_no = port_of(skb->ingress_ifindex);
	if (!port_no) {
		/* Not a port of ours (yet): leave it to the kernel. */
		count(OVSBPF_CNT_UNKNOWN_PORT);
		return TC_ACT_OK;
	}
	__builtin_memset(key, 0, sizeof(*key));
	key->n.in_port = port_no;

	struct pkt p;
	int r = parse_packet(skb, key, &p);
	if (r != OVSBPF_PARSE_OK) {
		count_drop(r);
		return TC_ACT_SHOT;
	}

	__u32 id = 0;
	r = lookup_pass(skb, key, 0, &id);
	for (int pass = 1;; pass++) {
		if (r != PASS_EXECUTE)
			return r;
		r = exec_flow(skb, key, &p, id, 0);
		if (r != EXEC_RECIRC)
			return r;
		if (pass >= OVSBPF_MAX_PASSES)
			break;
		r = run_pass(skb, key, 0, &id);
	}
	/* A chain longer than OVSBPF_MAX_PASSES: a slow-path bug or a loop. */
	count(OVSBPF_CNT_RECIRC_LIMIT);
	return TC_ACT_SHOT;
}

/* Action lists user space hands to ovsbpf_execute, one slot per upcall
 * handler (cb[0] names it), so handlers never share one; a slot's list
 * goes on in its own blocks at the top of action_blocks. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_EXEC_SLOTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_actions);
} exec_actions SEC(".maps");

/* The key's recirc_id and conntrack fields for the packet in the same
 * executor slot, as they were at the pass whose miss user space answers
 * (struct ovsbpf_exec_meta). All zero for a miss at the first pass. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_EXEC_SLOTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_exec_meta);
} exec_meta SEC(".maps");

/* The key of the packet each executor slot delivers: in a map rather than
 * on the stack, because ovsbpf_execute's chain of calls down to the
 * conntrack tracker (execute, ct_action, the TCP update) would pass the
 * verifier's 512 bytes of stack with a 144-byte key in its frame. Each
 * slot belongs to one handler, which runs one delivery at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_EXEC_SLOTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_key);
} exec_keys SEC(".maps");

/*
 * ovsbpf_execute delivers a packet the slow path handled: user space runs
 * it with BPF_PROG_TEST_RUN, the frame as data, ingress_ifindex the port it
 * came in on and cb[0] the executor slot whose exec_actions holds the
 * actions and whose exec_meta holds the recirc_id and conntrack fields the
 * packet had when it missed. The frame is the packet as it was at that
 * miss, so the parser's key with that metadata laid over it is the key the
 * pass saw, and conntrack does not run twice on one packet. The same
 * execute() as the fast path runs the actions, so the packet leaves
 * exactly as a cache hit would have sent it; outputs go out with
 * bpf_clone_redirect because a test run performs no redirect. A recirc
 * action continues in the megaflow cache like a fast-path packet (and may
 * upcall again), with statistics counted, for the passes left of
 * OVSBPF_MAX_PASSES.
 */
SEC("tc")
int ovsbpf_execute(struct __sk_buff *skb)
{
	__u32 slot = skb->cb[0];
	struct ovsbpf_key *key = bpf_map_lookup_elem(&exec_keys, &slot);
	if (!key)
		return TC_ACT_SHOT;
	__builtin_memset(key, 0, sizeof(*key));
	__u32 port_no = port_of(skb->ingress_ifindex);
	if (!port_no)
		return TC_ACT_SHOT;
	key->n.in_port = port_no;

	struct pkt p;
	if (parse_packet(skb, key, &p) != OVSBPF_PARSE_OK)
		return TC_ACT_SHOT;

	struct ovsbpf_actions *acts = bpf_map_lookup_elem(&exec_actions, &slot);
	struct ovsbpf_exec_meta *meta = bpf_map_lookup_elem(&exec_meta, &slot);
	if (!acts || !meta)
		return TC_ACT_SHOT;
	key->n.recirc_id = meta->recirc_id;
	key->n.ct_state = meta->ct_state;
	if (key->n.eth_type != bpf_htons(ETH_P_ARP)) {
		/* An ARP key holds tha in these bytes. */
		key->n.ct_zone = meta->ct_zone;
		key->n.ct_mark = meta->ct_mark;
	}
	__builtin_memcpy(key->w.ct_label, meta->ct_label, sizeof(key->w.ct_label));
	/* The delivered list counts as the first pass. */
	int r = execute(skb, key, &p, acts, 1);
	for (int pass = 1; r == EXEC_RECIRC; pass++) {
		if (pass >= OVSBPF_MAX_PASSES) {
			count(OVSBPF_CNT_RECIRC_LIMIT);
			break;
		}
		__u32 id = 0;
		r = run_pass(skb, key, 1, &id);
		if (r == PASS_EXECUTE)
			r = exec_flow(skb, key, &p, id, 1);
	}
	return TC_ACT_SHOT;
}

/* The datapath's clock as user space needs it: flow statistics hold
 * jiffies, which user space cannot read, so ovsbpf_clock (test-run by user
 * space) reports jiffies beside the monotonic clock. */
struct ovsbpf_clock {
	__u64 jiffies;
	__u64 mono_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_clock);
} clock SEC(".maps");

SEC("tc")
int ovsbpf_clock(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ovsbpf_clock *c = bpf_map_lookup_elem(&clock, &zero);
	if (c) {
		c->jiffies = bpf_jiffies64();
		c->mono_ns = bpf_ktime_get_ns();
	}
	return TC_ACT_OK;
}
