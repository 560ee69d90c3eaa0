/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The megaflow cache: masks, flows and their actions, shared with Go through
 * bpf2go -type.
 *
 * A megaflow is (mask, masked key) -> actions. The datapath keeps up to
 * OVSBPF_MAX_MASKS masks; a lookup ANDs the packet's narrow key with each
 * mask in turn, writes the mask's index into the key, and looks the result
 * up in the flows map (tuple space search). The first hit wins, so the slow
 * path must never install two overlapping megaflows under different masks.
 *
 * The flows map yields a flow id; the action list and the statistics live
 * in arrays at that id, so a per-CPU exact-match cache in front can name a
 * megaflow without a hash lookup.
 */
#ifndef OVSBPF_FLOW_H
#define OVSBPF_FLOW_H

#include "key.h"

/*
 * The datapath's limits. Each sizes a map or an array in a map value; they
 * are an enum rather than #defines so that bpf2go -type exports them and
 * Go's limits are these values, not copies (TestLayoutMatchesBTF checks the
 * maps against them).
 */
enum ovsbpf_limit {
	/* Masks searched per packet. Each costs a 48-byte hash lookup (about
	 * 1.3x an empty program); OVN's megaflows on one chassis need a
	 * handful, and 32 bounds the worst case near 40x. The slow path
	 * refuses new masks beyond this and sends such packets to user space
	 * instead. */
	OVSBPF_MAX_MASKS = 32,

	/* Actions per block of an action list. A megaflow's list starts
	 * with one block in flow_actions at the flow's id (8 covers a
	 * switch's output with a rewrite and a router's TTL decrement and MAC
	 * rewrites, so most lists are one block) and goes on, for a flood, in
	 * blocks chained through action_blocks (see struct ovsbpf_actions). */
	OVSBPF_MAX_ACTIONS = 8,

	/* Blocks one action list may chain, its first included: 64 blocks,
	 * 512 actions, hold a flood to 256 ports with a rewrite before every
	 * output, or to 512 plain outputs, which is more than the ports on one
	 * chassis that OVN's largest multicast group reaches. The executor's
	 * loop over blocks is bounded by it. */
	OVSBPF_MAX_ACTION_BLOCKS = 64,

	/* Datapath ports (VIFs). Port numbers index an array. */
	OVSBPF_MAX_PORTS = 1024,

	/* Megaflows, and so action lists, the datapath holds: Open vSwitch's
	 * default flow limit. Flow ids index arrays of this size (id 0
	 * unused). It is the size compiled in; user space sets the real one at
	 * load time from its flow limit, on the flows map and the three arrays
	 * at flow ids alike, and the revalidator keeps the count below it. */
	OVSBPF_MAX_FLOWS = 200000,

	/* Lookups per packet, the first included: each recirc starts one
	 * more. OVN's longest path on one chassis (a switch with stateful
	 * ACLs and a load balancer, a gateway router with NAT and a load
	 * balancer, the far switch, a hairpin) takes 13
	 * (docs/conntrack-design.md, section 1); 16 leaves room for a second
	 * router. Every pass but the first is a call of the global function
	 * run_pass, which the verifier checks once, so the bound costs it a
	 * few instructions a pass. A chain beyond this is a slow-path bug or a
	 * loop: the packet is dropped and counted (OVSBPF_CNT_RECIRC_LIMIT). */
	OVSBPF_MAX_PASSES = 16,

	/* The frame bytes an upcall carries: a whole frame at a 1500-byte
	 * MTU. */
	OVSBPF_UPCALL_MAX_FRAME = 1514,
};

struct ovsbpf_mask {
	struct ovsbpf_narrow bits; /* 1 bits: the key bits this mask keeps */
	__u32 used;                /* 0: a free slot, skipped */
	__u32 pad;
};

/* The order in which the tuple space search tries the mask slots: n slots,
 * as listed. User space lists every used slot, the most hit first (each
 * revalidator sweep reorders them by the hits counted in mask_hits, as
 * Open vSwitch sorts its subtables), and rewrites the list when a mask comes
 * or goes. A packet that reads the list while it is rewritten may try a
 * slot twice or miss one; a miss goes to the slow path, which finds its
 * megaflow installed, so a torn read costs an upcall, never a wrong hit:
 * megaflows under different masks never overlap with different actions. */
struct ovsbpf_mask_order {
	__u32 n;
	__u8 slot[OVSBPF_MAX_MASKS];
};

enum ovsbpf_action_type {
	OVSBPF_ACTION_END = 0,    /* no more actions */
	OVSBPF_ACTION_OUTPUT,     /* send to port */
	OVSBPF_ACTION_SET_ETH_SRC, /* data[0..5] */
	OVSBPF_ACTION_SET_ETH_DST,
	OVSBPF_ACTION_SET_IPV4_SRC, /* data[0..3], checksums fixed */
	OVSBPF_ACTION_SET_IPV4_DST,
	OVSBPF_ACTION_SET_TP_SRC,   /* data[0..1], TCP/UDP checksum fixed */
	OVSBPF_ACTION_SET_TP_DST,
	OVSBPF_ACTION_DEC_TTL,      /* IPv4 TTL or IPv6 hop limit; 1 or 0: to user space */
	OVSBPF_ACTION_PUSH_VLAN,    /* arg: TCI (without OVSBPF_VLAN_PRESENT) */
	OVSBPF_ACTION_POP_VLAN,
	OVSBPF_ACTION_USERSPACE,    /* a copy to user space (controller actions) */
	OVSBPF_ACTION_CT,           /* conntrack: arg indexes ct_params */
	OVSBPF_ACTION_RECIRC,       /* look up again with recirc_id = arg */
	OVSBPF_ACTION_SET_ARP,      /* ARP only: data[0..n-1] at offset arg & 0x1f
				     * of the ARP header, n = (arg >> 8 & 7) + 1;
				     * the key is not updated */
	OVSBPF_ACTION__MAX,
};

struct ovsbpf_action {
	__u16 type; /* enum ovsbpf_action_type */
	__u16 port; /* OUTPUT */
	__u32 arg;  /* PUSH_VLAN: TCI; RECIRC: recirc_id; CT: ct_params index;
		     * SET_ARP: where */
	__u8 data[8];
};

/* A block of an action list. A megaflow's first block is in flow_actions
 * at the flow's id; a list longer than OVSBPF_MAX_ACTIONS goes on in the
 * block action_blocks holds at index next, and so on, up to
 * OVSBPF_MAX_ACTION_BLOCKS blocks. The list ends at the first END action or
 * at the end of a block whose next is 0.
 *
 * User space never rewrites a list a packet may be reading: a changed
 * megaflow gets a new id and new blocks, and a freed id or block is reused
 * only after a quiet period. gen changes when an id is freed, so an
 * exact-match cache entry that still names the old id no longer matches;
 * it is kept only in the first block (0 in the others). */
struct ovsbpf_actions {
	__u32 gen;
	__u32 next; /* action_blocks index of the list's next block; 0: none */
	struct ovsbpf_action a[OVSBPF_MAX_ACTIONS];
};

/* A megaflow's statistics, per CPU, at the flow's id. */
/* One load or store the compiler neither splits, merges nor drops, for
 * words other CPUs and user space read and write (flow_used). */
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

struct ovsbpf_stats {
	__u64 packets;
	__u64 bytes;
};

/* An exact-match cache slot: a whole narrow key seen on this CPU, and the
 * megaflow it resolved to. */
struct ovsbpf_emc_entry {
	struct ovsbpf_narrow key;
	__u32 id;
	__u32 gen; /* the action list's gen when cached; 0: empty slot */
};

/* What the datapath knows of a port. */
struct ovsbpf_port {
	__u32 ifindex; /* host-side interface to send to */
	__u32 flags;   /* OVSBPF_PORT_* */
};

/* struct ovsbpf_port flags. */
enum ovsbpf_port_flag {
	/* The port's interface is the host side of a veth pair: deliver into
	 * the peer (the VM's side) directly, skipping the host side's
	 * transmit. */
	OVSBPF_PORT_PEER = 1,
};

/* Why a packet went to user space. */
enum ovsbpf_upcall_reason {
	OVSBPF_UPCALL_MISS = 1,  /* no megaflow matched */
	OVSBPF_UPCALL_ACTION,    /* a userspace action */
	OVSBPF_UPCALL_TTL,       /* TTL expired on decrement */
	OVSBPF_UPCALL_CT,        /* a ct() action, until eBPF conntrack exists */
};

struct ovsbpf_upcall {
	__u32 reason; /* enum ovsbpf_upcall_reason */
	__u32 len;    /* bytes of frame[] used */
	__u32 frame_len; /* the packet's full length */
	__u32 ifindex;
	__u64 ts_ns;  /* bpf_ktime_get_ns() at the upcall: handler latency starts here */
	struct ovsbpf_key key;
	__u8 frame[OVSBPF_UPCALL_MAX_FRAME];
	__u8 pad[2];
};

/* What ovsbpf_execute lays over the key it parses from a frame the slow
 * path delivers, one per executor slot (exec_meta). The frame is the packet
 * as it was when it missed at some pass, headers already rewritten by the
 * passes before; the parser gives it recirc_id 0 and no conntrack state,
 * so these put back the recirc_id and the conntrack fields it had at that
 * pass. Without them, delivering a packet past a ct would need ct to run
 * again, and TCP state would count the packet twice. */
struct ovsbpf_exec_meta {
	__u32 recirc_id;
	__u32 ct_mark;
	__u16 ct_zone;
	__u8 ct_state;
	__u8 pad;
	__u8 ct_label[16];
};

/* Datapath counters, per CPU. */
enum ovsbpf_counter {
	OVSBPF_CNT_EMC_HIT = 0,  /* lookups the exact-match cache answered */
	OVSBPF_CNT_MASK_HIT,     /* lookups the tuple space search answered */
	OVSBPF_CNT_MISS,         /* lookups nothing answered: upcalls */
	OVSBPF_CNT_UPCALL_LOST,  /* upcalls the ring had no room for */
	OVSBPF_CNT_UNKNOWN_PORT, /* packets from an interface with no port */
	OVSBPF_CNT_ACTION_ERROR, /* actions that failed (bad port, rewrite error) */
	OVSBPF_CNT_RECIRC_LIMIT, /* packets recirculated more than OVSBPF_MAX_PASSES */
	OVSBPF_CNT_MASK_PROBES,  /* masks tried by the tuple space search */
	OVSBPF_CNT__MAX,
};

#endif
