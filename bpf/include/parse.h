/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The packet parser: from an skb to a flow key (key.h).
 *
 * It reads Ethernet, one 802.1Q/802.1ad tag, ARP, IPv4 (with options and
 * fragments), IPv6 (with up to IPV6_MAX_EXT extension headers), TCP, UDP,
 * SCTP, ICMP, ICMPv6 and neighbour discovery. A frame too short for the
 * headers it announces, or with a header no stack would accept, is not
 * parsed: parse_packet returns why (enum ovsbpf_drop) and the caller drops
 * the packet and counts it. A malformed packet is never forwarded on a
 * guess.
 *
 * The parser reads the skb's linear part directly. Headers may lie beyond
 * it: a packet socket puts only the Ethernet header there for a frame
 * larger than a page, and a tap or a GSO packet as much as its sender
 * chose. When a header the parser needs lies past the linear part but
 * inside the packet, parse_packet pulls the headers in with
 * bpf_skb_pull_data and parses again; a packet whose headers are linear
 * (nearly all of them) never pays for the pull.
 */
#ifndef OVSBPF_PARSE_H
#define OVSBPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "key.h"

/* Why a packet was not parsed. Indexes the drop counters; 0 is success. */
enum ovsbpf_drop {
	OVSBPF_PARSE_OK = 0,
	OVSBPF_DROP_SHORT_ETH,     /* fewer than 14 bytes */
	OVSBPF_DROP_SHORT_VLAN,    /* a VLAN tag cut short */
	OVSBPF_DROP_STACKED_VLAN,  /* more than one VLAN tag */
	OVSBPF_DROP_SHORT_ARP,     /* ARP header or addresses cut short */
	OVSBPF_DROP_BAD_ARP,       /* ARP not for Ethernet and IPv4 */
	OVSBPF_DROP_SHORT_IPV4,    /* IPv4 header or datagram cut short */
	OVSBPF_DROP_BAD_IPV4,      /* version not 4, IHL below 5, length below IHL */
	OVSBPF_DROP_SHORT_IPV6,    /* IPv6 header or payload cut short */
	OVSBPF_DROP_BAD_IPV6,      /* version not 6 */
	OVSBPF_DROP_IPV6_EXT,      /* extension header chain too long or cut */
	OVSBPF_DROP_SHORT_L4,      /* TCP, UDP, SCTP or ICMP header cut short */
	OVSBPF_DROP_BAD_TCP,       /* TCP data offset below 5 or past the end */
	OVSBPF_DROP_BAD_ND,        /* neighbour discovery target or option malformed */
	OVSBPF_DROP__MAX,
};

/* The parser's bounds (an enum, so that tests read them from BTF). */
enum ovsbpf_parse_limit {
	/* Extension headers the parser follows before it gives up on an
	 * IPv6 packet. RFC 8200 recommends a handful at most; real traffic
	 * carries one or two. Six also keeps the verifier's work bounded. */
	IPV6_MAX_EXT = 6,

	/* Neighbour discovery options examined after the target address:
	 * the source or target link-layer option is normally the first. */
	ND_MAX_OPTS = 2,

	/* Bytes made linear when a header lies past the linear part: the
	 * longest header stack met in practice, Ethernet, a VLAN tag, IPv6
	 * with a few extension headers and neighbour discovery with its
	 * options (about 180 bytes), with room to spare. A packet whose
	 * headers go beyond it is still dropped as cut short. Only such
	 * packets pay for the copy. */
	OVSBPF_PULL_LEN = 256,
};

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct arp_eth_ipv4 {
	__be16 hrd, pro;
	__u8 hln, pln;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

struct sctp_ports {
	__be16 src, dst;
	__be32 vtag, checksum;
};

/* The packet's bytes as the parser sees them: [data, end) is the linear
 * part, len the whole frame. The parser records where the L3 and L4
 * headers start (0: none), for the actions that rewrite them, and whether
 * it stopped short of a header at the end of the linear part without
 * failing (cut: the neighbour discovery options). */
struct pkt {
	void *data, *end;
	__u32 len;
	__u16 l3_off, l4_off;
	__u8 cut;
};

static __always_inline int parse_l4(struct pkt *p, void *l4, __u8 proto, struct ovsbpf_key *key)
{
	p->l4_off = l4 - p->data;
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > p->end)
			return OVSBPF_DROP_SHORT_L4;
		if (th->doff < 5 || (l4 - p->data) + th->doff * 4 > p->len)
			return OVSBPF_DROP_BAD_TCP;
		key->n.tp_src = th->source;
		key->n.tp_dst = th->dest;
		key->n.tcp_flags = ((__be16 *)th)[6] & bpf_htons(0x0fff);
		return OVSBPF_PARSE_OK;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > p->end)
			return OVSBPF_DROP_SHORT_L4;
		key->n.tp_src = uh->source;
		key->n.tp_dst = uh->dest;
		return OVSBPF_PARSE_OK;
	}
	case IPPROTO_SCTP: {
		struct sctp_ports *sh = l4;
		if ((void *)(sh + 1) > p->end)
			return OVSBPF_DROP_SHORT_L4;
		key->n.tp_src = sh->src;
		key->n.tp_dst = sh->dst;
		return OVSBPF_PARSE_OK;
	}
	case IPPROTO_ICMP: {
		__u8 *ih = l4;
		if ((void *)(ih + 4) > p->end)
			return OVSBPF_DROP_SHORT_L4;
		key->n.tp_src = bpf_htons(ih[0]);
		key->n.tp_dst = bpf_htons(ih[1]);
		return OVSBPF_PARSE_OK;
	}
	case IPPROTO_ICMPV6: {
		struct icmp6hdr *ih = l4;
		if ((void *)(ih + 1) > p->end)
			return OVSBPF_DROP_SHORT_L4;
		key->n.tp_src = bpf_htons(ih->icmp6_type);
		key->n.tp_dst = bpf_htons(ih->icmp6_code);
		if ((ih->icmp6_type != 135 && ih->icmp6_type != 136) || ih->icmp6_code)
			return OVSBPF_PARSE_OK;
		/* Neighbour solicitation or advertisement: the target, then
		 * options of (type, length in 8-byte units, data). */
		__u8 *target = (__u8 *)(ih + 1);
		if ((void *)(target + 16) > p->end)
			return OVSBPF_DROP_BAD_ND;
		__builtin_memcpy(key->w.nd_target, target, 16);
		__u8 *opt = target + 16;
#pragma unroll
		for (int i = 0; i < ND_MAX_OPTS; i++) {
			if ((void *)(opt + 2) > p->end) {
				/* No more options, unless they lie past
				 * the linear part. */
				if ((void *)opt - p->data + 2 <= p->len)
					p->cut = 1;
				break;
			}
			__u8 len = opt[1];
			if (len == 0)
				return OVSBPF_DROP_BAD_ND;
			if ((opt[0] == 1 || opt[0] == 2) && len == 1) {
				if ((void *)(opt + 8) > p->end)
					return OVSBPF_DROP_BAD_ND;
				if (opt[0] == 1 && ih->icmp6_type == 135)
					__builtin_memcpy(key->w.nd_sll, opt + 2, 6);
				else if (opt[0] == 2 && ih->icmp6_type == 136)
					__builtin_memcpy(key->w.nd_tll, opt + 2, 6);
			}
			opt += len * 8;
		}
		return OVSBPF_PARSE_OK;
	}
	}
	return OVSBPF_PARSE_OK;
}

static __always_inline int parse_arp(struct pkt *p, void *l3, struct ovsbpf_key *key)
{
	struct arp_eth_ipv4 *arp = l3;
	if ((void *)(arp + 1) > p->end)
		return OVSBPF_DROP_SHORT_ARP;
	if (arp->hrd != bpf_htons(1) || arp->pro != bpf_htons(ETH_P_IP) || arp->hln != 6 || arp->pln != 4)
		return OVSBPF_DROP_BAD_ARP;
	key->n.nw_src = arp->spa;
	key->n.nw_dst = arp->tpa;
	key->n.nw_proto = bpf_ntohs(arp->op) & 0xff;
	/* sha and tha live where ARP has no L4 or conntrack fields. */
	__builtin_memcpy(&key->n.tp_src, arp->sha, 6);
	__builtin_memcpy(&key->n.ct_zone, arp->tha, 6);
	return OVSBPF_PARSE_OK;
}

static __always_inline int parse_ipv4(struct pkt *p, void *l3, struct ovsbpf_key *key)
{
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > p->end)
		return OVSBPF_DROP_SHORT_IPV4;
	if (ip->version != 4 || ip->ihl < 5)
		return OVSBPF_DROP_BAD_IPV4;
	__u32 hlen = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen)
		return OVSBPF_DROP_BAD_IPV4;
	if ((l3 - p->data) + tot > p->len || l3 + hlen > p->end)
		return OVSBPF_DROP_SHORT_IPV4;
	key->n.nw_src = ip->saddr;
	key->n.nw_dst = ip->daddr;
	key->n.nw_proto = ip->protocol;
	key->n.nw_ttl = ip->ttl;
	key->n.nw_tos = ip->tos;
	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & (IP_MF | IP_OFFSET)) {
		key->n.nw_frag = OVSBPF_FRAG_ANY;
		if (frag & IP_OFFSET) {
			key->n.nw_frag |= OVSBPF_FRAG_LATER;
			return OVSBPF_PARSE_OK; /* no L4 header in later fragments */
		}
	}
	return parse_l4(p, l3 + hlen, ip->protocol, key);
}

static __always_inline int parse_ipv6(struct pkt *p, void *l3, struct ovsbpf_key *key)
{
	struct ipv6hdr *ip6 = l3;
	if ((void *)(ip6 + 1) > p->end)
		return OVSBPF_DROP_SHORT_IPV6;
	if (ip6->version != 6)
		return OVSBPF_DROP_BAD_IPV6;
	if ((l3 - p->data) + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > p->len)
		return OVSBPF_DROP_SHORT_IPV6;
	__builtin_memcpy(key->w.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(key->w.ipv6_dst, &ip6->daddr, 16);
	__u8 *vtc = l3;
	key->n.nw_tos = (vtc[0] << 4) | (vtc[1] >> 4);
	key->w.ipv6_label = bpf_htonl(((__u32)(vtc[1] & 0x0f) << 16) | (vtc[2] << 8) | vtc[3]);
	key->n.nw_ttl = ip6->hop_limit;

	__u8 nh = ip6->nexthdr;
	__u8 *h = (__u8 *)(ip6 + 1);
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT; i++) {
		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if ((void *)(h + 2) > p->end)
				return OVSBPF_DROP_IPV6_EXT;
			nh = h[0];
			h += (h[1] + 1) * 8;
			continue;
		case IPPROTO_AH:
			if ((void *)(h + 2) > p->end)
				return OVSBPF_DROP_IPV6_EXT;
			nh = h[0];
			h += (h[1] + 2) * 4;
			continue;
		case IPPROTO_FRAGMENT:
			if ((void *)(h + 8) > p->end)
				return OVSBPF_DROP_IPV6_EXT;
			key->n.nw_frag = OVSBPF_FRAG_ANY;
			nh = h[0];
			if (((h[2] << 8) | h[3]) & 0xfff8) {
				key->n.nw_frag |= OVSBPF_FRAG_LATER;
				key->n.nw_proto = nh;
				return OVSBPF_PARSE_OK;
			}
			h += 8;
			continue;
		}
		break;
	}
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	    nh == IPPROTO_AH || nh == IPPROTO_FRAGMENT)
		return OVSBPF_DROP_IPV6_EXT; /* more headers than we follow */
	key->n.nw_proto = nh;
	if ((void *)h > p->end)
		return OVSBPF_DROP_IPV6_EXT;
	return parse_l4(p, h, nh, key);
}

/* parse_linear is parse_packet on the linear part alone. */
static __always_inline int parse_linear(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p)
{
	*p = (struct pkt){
		.data = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
		.len = skb->len,
	};
	struct ethhdr *eth = p->data;
	if ((void *)(eth + 1) > p->end)
		return OVSBPF_DROP_SHORT_ETH;
	__builtin_memcpy(key->n.eth_dst, eth->h_dest, 6);
	__builtin_memcpy(key->n.eth_src, eth->h_source, 6);
	__be16 proto = eth->h_proto;
	void *l3 = eth + 1;

	/* The kernel may have taken the tag off already (skb->vlan_present);
	 * otherwise it is in the frame. */
	if (skb->vlan_present)
		key->n.vlan_tci = bpf_htons(skb->vlan_tci | OVSBPF_VLAN_PRESENT);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		if (key->n.vlan_tci)
			return OVSBPF_DROP_STACKED_VLAN;
		struct vlan_tag *tag = l3;
		if ((void *)(tag + 1) > p->end)
			return OVSBPF_DROP_SHORT_VLAN;
		key->n.vlan_tci = tag->tci | bpf_htons(OVSBPF_VLAN_PRESENT);
		proto = tag->proto;
		l3 = tag + 1;
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
			return OVSBPF_DROP_STACKED_VLAN;
	}
	key->n.eth_type = proto;

	switch (proto) {
	case bpf_htons(ETH_P_ARP):
	case bpf_htons(ETH_P_RARP):
		p->l3_off = l3 - p->data;
		return parse_arp(p, l3, key);
	case bpf_htons(ETH_P_IP):
		p->l3_off = l3 - p->data;
		return parse_ipv4(p, l3, key);
	case bpf_htons(ETH_P_IPV6):
		p->l3_off = l3 - p->data;
		return parse_ipv6(p, l3, key);
	}
	return OVSBPF_PARSE_OK; /* other Ethernet types: L2 fields only */
}

/*
 * parse_packet fills key from skb (key must be zeroed, and its metadata,
 * in_port and recirc_id, set by the caller) and p with where the headers
 * are, and returns OVSBPF_PARSE_OK or the reason to drop the packet.
 *
 * When the linear part ended before the headers did (a failure, or
 * options not read, in a packet longer than its linear part), the first
 * OVSBPF_PULL_LEN bytes are pulled into the linear part and the packet is
 * parsed again. The pull moves the packet's data, so every pointer into it
 * taken before is stale: the second parse starts from skb->data afresh.
 */
static __always_inline int parse_packet(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p)
{
	__u16 in_port = key->n.in_port;
	__u32 recirc_id = key->n.recirc_id;
	int r = parse_linear(skb, key, p);
	if (r == OVSBPF_PARSE_OK && !p->cut)
		return r;
	__u32 linear = p->end - p->data;
	__u32 want = p->len < OVSBPF_PULL_LEN ? p->len : OVSBPF_PULL_LEN;
	if (linear >= want)
		return r; /* the headers were all there: malformed */
	if (bpf_skb_pull_data(skb, want) < 0)
		return r;
	__builtin_memset(key, 0, sizeof(*key));
	key->n.in_port = in_port;
	key->n.recirc_id = recirc_id;
	return parse_linear(skb, key, p);
}

#endif
