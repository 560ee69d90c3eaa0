/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flow key: what the datapath knows of a packet when it looks it up in
 * the megaflow cache. One definition, shared with Go through bpf2go -type.
 *
 * The key has two parts. The narrow part, 48 bytes, holds the fields of
 * IPv4 and ARP megaflows; the wide part holds what only IPv6, neighbour
 * discovery, ct_label and tunnels need. A megaflow whose mask touches only
 * the narrow part is hashed on 48 bytes, which keeps a tuple space search
 * over 8 masks near 11x an empty program (docs/datapath-design.md: at 144
 * bytes it is 24x).
 *
 * All multi-byte header fields are in network byte order, as on the wire;
 * metadata (ports, recirculation, conntrack zone and mark) is in host order.
 */
#ifndef OVSBPF_KEY_H
#define OVSBPF_KEY_H

#include <linux/types.h>

/*
 * Flag values are enums, not #defines, so that they reach the object's BTF
 * and bpf2go -type gives Go the same constants: the C is their one
 * definition.
 */

/* nw_frag bits, as OVS defines them. */
enum ovsbpf_frag {
	OVSBPF_FRAG_ANY = 1 << 0,   /* the packet is a fragment */
	OVSBPF_FRAG_LATER = 1 << 1, /* ...and not the first one */
};

/* vlan_tci bit meaning "a tag is present" (the 802.1Q CFI/DEI bit, as OVS
 * uses it in flow keys). */
enum ovsbpf_vlan {
	OVSBPF_VLAN_PRESENT = 0x1000,
};

/*
 * The narrow key, laid out so that a 32-bit recirc_id fits in 48 bytes:
 * in_port, nw_tos and the mask slot share the first word, recirc_id takes
 * the last. The byte offsets of eth_dst..ct_mark are those of the first
 * layout (16-bit recirc_id at 2, nw_tos at 44), so the ARP overlay and the
 * words the EMC hash and the masked AND read did not move.
 */
struct ovsbpf_narrow {
	__u16 in_port;   /* datapath port the packet came in on */
	__u8 nw_tos;     /* DSCP and ECN */
	/* 0 in a packet's key. The tuple space search puts the slot of the
	 * mask it tries into the masked key (a mask in the masks map holds
	 * its slot number here), so that equal masked keys under two masks
	 * are two entries of the flows map. */
	__u8 mask_slot;
	__u8 eth_dst[6];
	__u8 eth_src[6];
	__be16 eth_type; /* after the VLAN tag, if any */
	__be16 vlan_tci; /* with OVSBPF_VLAN_PRESENT when tagged, else 0 */
	__be32 nw_src;   /* IPv4 source; ARP sender protocol address */
	__be32 nw_dst;   /* IPv4 destination; ARP target protocol address */
	__u8 nw_proto;   /* IP protocol; ARP opcode (its low byte) */
	__u8 nw_ttl;     /* IPv4 TTL, IPv6 hop limit */
	__u8 nw_frag;    /* OVSBPF_FRAG_* */
	__u8 ct_state;   /* OVS ct_state bits, filled by ct before recirc */
	/* L4, by protocol. For ARP these 12 bytes hold sha (tp_src..tcp_flags)
	 * and tha (ct_zone..ct_mark): ARP has no ports and no conntrack, and
	 * every mask that reads them also reads eth_type. */
	__be16 tp_src;    /* TCP/UDP/SCTP source port; ICMP type */
	__be16 tp_dst;    /* ...destination port; ICMP code */
	__be16 tcp_flags; /* low 12 bits of the TCP flags word */
	__u16 ct_zone;
	__u32 ct_mark;
	/* 0 on the first pass; set by recirc. 32 bits, so that ids are handed
	 * out in increasing order and a freed id is not met again before the
	 * counter wraps (docs/conntrack-design.md, section 1). */
	__u32 recirc_id;
};

struct ovsbpf_wide {
	__u8 ipv6_src[16];
	__u8 ipv6_dst[16];
	__u8 nd_target[16];
	__u8 nd_sll[6]; /* neighbour solicitation's source link-layer option */
	__u8 nd_tll[6]; /* neighbour advertisement's target link-layer option */
	__be32 ipv6_label; /* low 20 bits */
	__u8 ct_label[16];
	__be64 tun_id;       /* Geneve VNI: OVN's logical datapath key */
	__u16 tun_in_lport;  /* Geneve option 0x0102/0x80: logical input port key */
	__u16 tun_out_lport; /* ...and logical output port key */
	__u32 pad;
};

struct ovsbpf_key {
	struct ovsbpf_narrow n;
	struct ovsbpf_wide w;
};

_Static_assert(sizeof(struct ovsbpf_narrow) == 48, "the narrow key is hashed: keep it 48 bytes");
_Static_assert(sizeof(struct ovsbpf_wide) == 96, "wide key layout changed: update Go and docs");

#endif
