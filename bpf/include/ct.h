/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection tracking in eBPF: the tables and the ct action
 * (docs/conntrack-design.md, sections 3, 4 and 6).
 *
 * A connection is one element of the ct_conns4 array, found through
 * ct_index4, a hash with one entry per direction: the packet's own tuple
 * (zone included) is one lookup, whichever way the packet goes. The
 * reply entry holds the reply tuple, which is also where a NAT binding
 * will live (the translated tuple), so SNAT and DNAT can later sit on one
 * connection without a second lookup.
 *
 * Expiry is a time stored in the connection and compared on every lookup:
 * an expired connection is absent, whether or not anything has removed it
 * yet. A commit that meets an expired or stale entry reclaims it; user
 * space (package ct) flushes and sweeps. Nothing is LRU: a full table
 * refuses new connections, counts them, and never drops an established
 * one silently.
 *
 * Protocols follow Open vSwitch's userspace conntrack: TCP after OpenBSD
 * pf's sequence tracking (lib/conntrack-tcp.c), UDP and other IP protocols
 * as "other" (first, multiple, bidirectional), ICMP echo, timestamp and
 * information requests keyed by id. Only IPv4 is tracked so far; an IPv6
 * packet, a fragment or an ICMP error under ct is trk|inv and counted.
 *
 * Concurrency. Lookups and creates are lock free: creates insert the
 * index entries with BPF_NOEXIST, so of two CPUs creating the same
 * connection one wins and the other counts a race. The per-connection
 * updates (TCP peer state, expiry, mark) are plain stores: two CPUs
 * updating one connection at the same instant can lose one update, as a
 * retransmit would. A bpf_spin_lock in the conn would forbid mapping the
 * array (open question 3 of the design).
 */
#ifndef OVSBPF_CT_H
#define OVSBPF_CT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "key.h"
#include "parse.h"

/* ct_state bits as Open vSwitch numbers them (flowxlate/field CS*). */
enum ovsbpf_ct_state {
	OVSBPF_CS_NEW = 0x01,
	OVSBPF_CS_EST = 0x02,
	OVSBPF_CS_REL = 0x04,
	OVSBPF_CS_RPL = 0x08,
	OVSBPF_CS_INV = 0x10,
	OVSBPF_CS_TRK = 0x20,
	OVSBPF_CS_SNAT = 0x40,
	OVSBPF_CS_DNAT = 0x80,
};

/* struct ovsbpf_ct_params.flags. NAT and LB are reserved: the fields they
 * will use are in the params already, nothing reads them yet. */
enum ovsbpf_ct_param_flag {
	OVSBPF_CTP_COMMIT = 1 << 0,     /* store the connection if new */
	OVSBPF_CTP_FORCE = 1 << 1,      /* a reply-direction hit ends it; with
					 * COMMIT a new one starts */
	OVSBPF_CTP_SET_MARK = 1 << 2,   /* with COMMIT: mark/mark_mask */
	OVSBPF_CTP_SET_LABEL = 1 << 3,  /* with COMMIT: label/label_mask */
	OVSBPF_CTP_NAT = 1 << 4,        /* reserved */
	OVSBPF_CTP_NAT_SRC = 1 << 5,    /* reserved */
	OVSBPF_CTP_NAT_DST = 1 << 6,    /* reserved */
	OVSBPF_CTP_NAT_PORTS = 1 << 7,  /* reserved */
	OVSBPF_CTP_NAT_RANDOM = 1 << 8, /* reserved */
	OVSBPF_CTP_LB = 1 << 9,         /* reserved */
	OVSBPF_CTP_V6 = 1 << 10,        /* reserved */
};

/* struct ovsbpf_ct_conn4.flags. */
enum ovsbpf_ct_conn_flag {
	OVSBPF_CTF_LIVE = 1 << 0,       /* the slot holds a connection */
	OVSBPF_CTF_SEEN_REPLY = 1 << 1, /* a packet went the reply way */
	OVSBPF_CTF_MULTIPLE = 1 << 2,   /* other/ICMP: more than one packet */
	OVSBPF_CTF_SNAT = 1 << 3,       /* reserved for NAT */
	OVSBPF_CTF_DNAT = 1 << 4,       /* reserved for NAT */
};

/* struct ovsbpf_ct_config.flags. */
enum ovsbpf_ct_config_flag {
	/* Skip TCP sequence and window checks, keep the state machine: for
	 * asymmetric paths (OVS: dpctl/ct-disable-tcp-seq-chk). */
	OVSBPF_CT_CFG_LIBERAL = 1 << 0,
};

/* TCP states per direction, numbered as OVS's ct_dpif_tcp_state (pf's),
 * which dumps name. pf itself moves through CLOSED, SYN_SENT,
 * ESTABLISHED, CLOSING, FIN_WAIT_2 and TIME_WAIT only. */
enum ovsbpf_tcp_state {
	OVSBPF_TCPS_CLOSED = 0,
	OVSBPF_TCPS_LISTEN,
	OVSBPF_TCPS_SYN_SENT,
	OVSBPF_TCPS_SYN_RECV,
	OVSBPF_TCPS_ESTABLISHED,
	OVSBPF_TCPS_CLOSE_WAIT,
	OVSBPF_TCPS_FIN_WAIT_1,
	OVSBPF_TCPS_CLOSING,
	OVSBPF_TCPS_LAST_ACK,
	OVSBPF_TCPS_FIN_WAIT_2,
	OVSBPF_TCPS_TIME_WAIT,
	OVSBPF_TCPS__MAX,
};

/* Index of ct_timeouts: OVS's CT_TIMEOUTS classes, in that order. */
enum ovsbpf_ct_timeout {
	OVSBPF_CT_TM_TCP_FIRST_PACKET = 0,
	OVSBPF_CT_TM_TCP_OPENING,
	OVSBPF_CT_TM_TCP_ESTABLISHED,
	OVSBPF_CT_TM_TCP_CLOSING,
	OVSBPF_CT_TM_TCP_FIN_WAIT,
	OVSBPF_CT_TM_TCP_CLOSED,
	OVSBPF_CT_TM_OTHER_FIRST,
	OVSBPF_CT_TM_OTHER_MULTIPLE,
	OVSBPF_CT_TM_OTHER_BIDIR,
	OVSBPF_CT_TM_ICMP_FIRST,
	OVSBPF_CT_TM_ICMP_REPLY,
	OVSBPF_CT_TM__MAX,
};

/* The default of each class in seconds, used while its ct_timeouts slot
 * is 0: OVS's userspace defaults (lib/conntrack-tp.c). */
enum ovsbpf_ct_timeout_default {
	OVSBPF_CT_DEF_TCP_FIRST_PACKET = 30,
	OVSBPF_CT_DEF_TCP_OPENING = 30,
	OVSBPF_CT_DEF_TCP_ESTABLISHED = 24 * 60 * 60,
	OVSBPF_CT_DEF_TCP_CLOSING = 15 * 60,
	OVSBPF_CT_DEF_TCP_FIN_WAIT = 45,
	OVSBPF_CT_DEF_TCP_CLOSED = 30,
	OVSBPF_CT_DEF_OTHER_FIRST = 60,
	OVSBPF_CT_DEF_OTHER_MULTIPLE = 60,
	OVSBPF_CT_DEF_OTHER_BIDIR = 30,
	OVSBPF_CT_DEF_ICMP_FIRST = 60,
	OVSBPF_CT_DEF_ICMP_REPLY = 30,
};

/* Counters (ct_counters, per CPU). */
enum ovsbpf_ct_counter {
	OVSBPF_CT_CNT_CREATED = 0,   /* connections stored */
	OVSBPF_CT_CNT_REFUSED_FULL,  /* commits refused: max_conns or capacity */
	OVSBPF_CT_CNT_INV_FLAGS,     /* TCP flag combination no stack sends */
	OVSBPF_CT_CNT_INV_WINDOW,    /* TCP segment outside the window */
	OVSBPF_CT_CNT_INV_NO_CONN,   /* no connection, and not a valid first packet */
	OVSBPF_CT_CNT_INV_UNSUPPORTED, /* IPv6, fragments, ICMP errors: later steps */
	OVSBPF_CT_CNT_RECLAIMED,     /* expired connections reclaimed by a commit */
	OVSBPF_CT_CNT_REPLACED,      /* connections a SYN or FORCE ended */
	OVSBPF_CT_CNT_RACES,         /* creates lost to another CPU */
	OVSBPF_CT_CNT__MAX,
};

/* Sizes. The loader may set other capacities (MaxEntries) before loading:
 * ct_conns4 and ct_free4 hold OVSBPF_CT_CAPACITY connections and
 * ct_index4 two entries per connection. 65,536 connections take about
 * 16 MiB preallocated; the design's 1,000,000 is a load-time choice. */
enum ovsbpf_ct_limit {
	OVSBPF_CT_CAPACITY = 65536,
	OVSBPF_CT_INDEX_ENTRIES = 2 * OVSBPF_CT_CAPACITY,
	/* ct_params slots: one per distinct ct() action of the megaflows. */
	OVSBPF_CT_MAX_PARAMS = 4096,
	/* Bytes of TCP options read to find the window scale: all of them. */
	OVSBPF_CT_TCP_MAX_OPTS = 40,
	/* pf's bound on how far back an ACK may be (MAXACKWINDOW). */
	OVSBPF_CT_MAX_ACK_WINDOW = 0xffff + 1500,
	/* Largest window scale shift (RFC 7323). */
	OVSBPF_CT_MAX_WSCALE = 14,
	/* expires is rewritten on a hit only when it moves by this many
	 * milliseconds or more, so most packets do not dirty the line. */
	OVSBPF_CT_REFRESH_MS = 1000,
};

/* The index key: a packet's tuple in a zone. ICMP queries carry the id in
 * sport and the type and code in dport's two bytes (type first), as OVS's
 * ct_dpif_tuple overlays them. 16 bytes. */
struct ovsbpf_ct_tuple4 {
	__u16 zone;
	__u8 proto;
	__u8 pad;
	__be16 sport, dport;
	__be32 src, dst;
};

/* The index value: which connection, and which of its directions. */
struct ovsbpf_ct_ref {
	__u32 conn; /* ct_conns4 index */
	__u32 dir;  /* 0: original direction, 1: reply */
};

/* pf's state for one direction (the sender of that direction). */
struct ovsbpf_tcp_peer {
	__u32 end;    /* highest sequence number sent, plus one (pf seqlo) */
	__u32 maxend; /* highest the peer's window allows (pf seqhi) */
	__u16 maxwin; /* largest window seen, unscaled */
	__u8 wscale;  /* OVSBPF_TCP_WSCALE_*: shift and "negotiated" */
	__u8 state;   /* enum ovsbpf_tcp_state */
};

enum ovsbpf_tcp_wscale {
	OVSBPF_TCP_WSCALE_MASK = 0x0f,
	OVSBPF_TCP_WSCALE_FLAG = 0x80, /* the SYN carried the option */
};

/* A connection: an element of ct_conns4. 96 bytes. */
struct ovsbpf_ct_conn4 {
	struct ovsbpf_ct_tuple4 orig;  /* as the first packet had it */
	struct ovsbpf_ct_tuple4 reply; /* what replies carry: the NAT binding */
	__u32 expires;                 /* monotonic ms, low 32 bits */
	__u32 gen;                     /* bumped each time the slot is filled */
	__u32 mark;
	__u32 flags;                   /* OVSBPF_CTF_* */
	__u8 label[16];                /* as the key holds it (big endian) */
	struct ovsbpf_tcp_peer peer[2]; /* TCP: [0] original sender, [1] reply */
	__u32 lb_backend;              /* reserved for load balancing */
	__u32 pad;
};

/* The parameters of one ct() action: ct_params[P]. 88 bytes. */
struct ovsbpf_ct_params {
	__u16 zone;
	__u16 flags;   /* OVSBPF_CTP_* */
	__u32 lb_group; /* reserved */
	__u32 mark, mark_mask; /* written at commit under SET_MARK */
	__u8 label[16], label_mask[16]; /* written at commit under SET_LABEL */
	__u8 nat_min[16], nat_max[16];  /* reserved: NAT address range */
	__be16 port_min, port_max;      /* reserved: NAT port range */
	__u32 pad;
};

/* Settings user space writes (ct_config[0]). */
struct ovsbpf_ct_config {
	__u32 max_conns; /* 0: the capacity */
	__u32 flags;     /* OVSBPF_CT_CFG_* */
	__u32 pad[2];
};

/* Allocation state (ct_alloc[0]), changed only with atomics, by the
 * datapath and by user space through the mapping. */
struct ovsbpf_ct_alloc {
	__u32 next_id; /* ids below it have been handed out at least once */
	__u32 created; /* connections created */
	__u32 freed;   /* connections freed: created - freed is the count */
	__u32 pad;
};

_Static_assert(sizeof(struct ovsbpf_ct_tuple4) == 16, "ct tuple4 layout changed: regenerate ct/");
_Static_assert(sizeof(struct ovsbpf_ct_conn4) == 96, "ct conn4 layout changed: regenerate ct/");
_Static_assert(sizeof(struct ovsbpf_ct_params) == 88, "ct params layout changed: regenerate ct/");

/* Tuple (both directions of every connection) -> connection. Preallocated:
 * the datapath never allocates, and memory is known at load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OVSBPF_CT_INDEX_ENTRIES);
	__type(key, struct ovsbpf_ct_tuple4);
	__type(value, struct ovsbpf_ct_ref);
} ct_index4 SEC(".maps");

/* Connection id -> connection. Mappable, so user space can read it
 * without a syscall per entry (no bpf_spin_lock: see the top). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_CT_CAPACITY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ovsbpf_ct_conn4);
} ct_conns4 SEC(".maps");

/* Ids freed and not yet reused. Ids never used come from
 * ct_alloc.next_id, so a fresh table needs no filling. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, OVSBPF_CT_CAPACITY);
	__type(value, __u32);
} ct_free4 SEC(".maps");

/* ct() parameters, indexed by the action's argument. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_CT_MAX_PARAMS);
	__type(key, __u32);
	__type(value, struct ovsbpf_ct_params);
} ct_params SEC(".maps");

/* Timeout of each class in milliseconds; 0: the default. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_CT_TM__MAX);
	__type(key, __u32);
	__type(value, __u32);
} ct_timeouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_ct_config);
} ct_config SEC(".maps");

/* Mappable: user space frees (flush) count here with atomics too. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ovsbpf_ct_alloc);
} ct_alloc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_CT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} ct_counters SEC(".maps");

/* Force BTF for the types Go generates (bpf2go -type). */
const enum ovsbpf_ct_state *unused_ct_state __attribute__((unused));
const enum ovsbpf_ct_param_flag *unused_ct_param_flag __attribute__((unused));
const enum ovsbpf_ct_conn_flag *unused_ct_conn_flag __attribute__((unused));
const enum ovsbpf_ct_config_flag *unused_ct_config_flag __attribute__((unused));
const enum ovsbpf_tcp_state *unused_tcp_state __attribute__((unused));
const enum ovsbpf_ct_timeout *unused_ct_timeout __attribute__((unused));
const enum ovsbpf_ct_timeout_default *unused_ct_timeout_default __attribute__((unused));
const enum ovsbpf_ct_counter *unused_ct_counter __attribute__((unused));
const enum ovsbpf_ct_limit *unused_ct_limit __attribute__((unused));
const enum ovsbpf_tcp_wscale *unused_tcp_wscale __attribute__((unused));
const struct ovsbpf_ct_alloc *unused_ct_alloc __attribute__((unused));

/* TCP flag bits in the key's tcp_flags (host order after bpf_ntohs). */
#define CT_TCP_FIN 0x01
#define CT_TCP_SYN 0x02
#define CT_TCP_RST 0x04
#define CT_TCP_PSH 0x08
#define CT_TCP_ACK 0x10
#define CT_TCP_URG 0x20

/* Sequence-space comparisons, modulo 2^32. */
#define CT_SEQ_GEQ(a, b) ((__s32)((__u32)(a) - (__u32)(b)) >= 0)
#define CT_SEQ_GT(a, b) ((__s32)((__u32)(a) - (__u32)(b)) > 0)

/* What an update made of a packet on a known connection (OVS's
 * ct_update_res). */
enum ct_update {
	CT_UPD_VALID,     /* est */
	CT_UPD_VALID_NEW, /* still new: no reply yet */
	CT_UPD_INVALID,   /* inv, the connection untouched */
	CT_UPD_REPLACE,   /* a SYN on a closed connection: it ends, a new one may start */
};

/* The TCP header fields the tracker reads. */
struct ct_tcp_seg {
	__u32 seq, ack;
	__u32 len;  /* payload bytes */
	__u16 win;  /* unscaled */
	__u16 flags;
	__u8 wscale; /* from a SYN's options: OVSBPF_TCP_WSCALE_* */
};

static __always_inline void ct_count(__u32 c)
{
	__u64 *n = bpf_map_lookup_elem(&ct_counters, &c);
	if (n)
		*n += 1;
}

static __always_inline __u32 ct_now_ms(void)
{
	return bpf_ktime_get_coarse_ns() / 1000000;
}

/* Whether expires lies in the past (wrap-safe: timeouts are far below
 * 2^31 ms, 24 days). */
static __always_inline int ct_expired(const struct ovsbpf_ct_conn4 *c, __u32 now)
{
	return (__s32)(c->expires - now) <= 0;
}

static __always_inline __u32 ct_timeout_ms(__u32 tm)
{
	__u32 *v = bpf_map_lookup_elem(&ct_timeouts, &tm);
	if (v && *v)
		return *v;
	switch (tm) {
	case OVSBPF_CT_TM_TCP_FIRST_PACKET: return OVSBPF_CT_DEF_TCP_FIRST_PACKET * 1000;
	case OVSBPF_CT_TM_TCP_OPENING: return OVSBPF_CT_DEF_TCP_OPENING * 1000;
	case OVSBPF_CT_TM_TCP_ESTABLISHED: return OVSBPF_CT_DEF_TCP_ESTABLISHED * 1000;
	case OVSBPF_CT_TM_TCP_CLOSING: return OVSBPF_CT_DEF_TCP_CLOSING * 1000;
	case OVSBPF_CT_TM_TCP_FIN_WAIT: return OVSBPF_CT_DEF_TCP_FIN_WAIT * 1000;
	case OVSBPF_CT_TM_TCP_CLOSED: return OVSBPF_CT_DEF_TCP_CLOSED * 1000;
	case OVSBPF_CT_TM_OTHER_FIRST: return OVSBPF_CT_DEF_OTHER_FIRST * 1000;
	case OVSBPF_CT_TM_OTHER_MULTIPLE: return OVSBPF_CT_DEF_OTHER_MULTIPLE * 1000;
	case OVSBPF_CT_TM_OTHER_BIDIR: return OVSBPF_CT_DEF_OTHER_BIDIR * 1000;
	case OVSBPF_CT_TM_ICMP_FIRST: return OVSBPF_CT_DEF_ICMP_FIRST * 1000;
	}
	return OVSBPF_CT_DEF_ICMP_REPLY * 1000;
}

/* ct_set_expiry moves expires to now + the class's timeout; a move of
 * less than OVSBPF_CT_REFRESH_MS forward is skipped. */
static __always_inline void ct_set_expiry(struct ovsbpf_ct_conn4 *c, __u32 tm, __u32 now)
{
	__u32 exp = now + ct_timeout_ms(tm);
	__s32 moved = exp - c->expires;
	if (moved < 0 || moved >= OVSBPF_CT_REFRESH_MS)
		c->expires = exp;
}

static __always_inline int ct_tuple_eq(const struct ovsbpf_ct_tuple4 *a, const struct ovsbpf_ct_tuple4 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

static __always_inline void ct_tuple_reverse(struct ovsbpf_ct_tuple4 *r, const struct ovsbpf_ct_tuple4 *t)
{
	*r = *t;
	r->src = t->dst;
	r->dst = t->src;
	if (t->proto == IPPROTO_ICMP) {
		/* Same id; the type becomes its answer's (request <-> reply). */
		__u8 *tc = (__u8 *)&r->dport;
		switch (tc[0]) {
		case 8: tc[0] = 0; break;    /* echo request */
		case 0: tc[0] = 8; break;
		case 13: tc[0] = 14; break;  /* timestamp */
		case 14: tc[0] = 13; break;
		case 15: tc[0] = 16; break;  /* information */
		case 16: tc[0] = 15; break;
		}
	} else {
		r->sport = t->dport;
		r->dport = t->sport;
	}
}

/* ct_free_conn ends connection id: both index entries go, the slot is
 * emptied and the id queued for reuse. Whoever clears LIVE with a
 * compare-and-swap frees (this CPU, another, or user space's flush), so
 * an id is queued once. A CPU that found the conn just before keeps a
 * pointer to a slot that may be refilled: its tuple comparison then fails
 * or it sees the new connection (the GC's quarantine, a later step,
 * closes that window). */
static __always_inline void ct_free_conn(__u32 id, struct ovsbpf_ct_conn4 *c)
{
	__u32 old = c->flags;
	if (!(old & OVSBPF_CTF_LIVE) || __sync_val_compare_and_swap(&c->flags, old, 0) != old)
		return;
	struct ovsbpf_ct_tuple4 orig = c->orig, reply = c->reply;
	bpf_map_delete_elem(&ct_index4, &reply);
	bpf_map_delete_elem(&ct_index4, &orig);
	bpf_map_push_elem(&ct_free4, &id, 0);
	__u32 zero = 0;
	struct ovsbpf_ct_alloc *a = bpf_map_lookup_elem(&ct_alloc, &zero);
	if (a)
		__sync_fetch_and_add(&a->freed, 1);
}

/* A walk over a SYN's TCP options, one option a bpf_loop step. */
struct ct_opt_walk {
	__u8 opts[OVSBPF_CT_TCP_MAX_OPTS];
	__u32 len, at;
	__u8 wscale; /* OVSBPF_TCP_WSCALE_*, once found */
};

static long ct_opt_step(__u64 index, void *ctx)
{
	struct ct_opt_walk *w = ctx;
	__u32 i = w->at;
	if (i + 3 > w->len || i > OVSBPF_CT_TCP_MAX_OPTS - 3)
		return 1; /* too short for a window scale option: stop */
	__u8 kind = w->opts[i];
	if (kind == 0) /* end of options */
		return 1;
	if (kind == 1) { /* no-op */
		w->at = i + 1;
		return 0;
	}
	__u8 len = w->opts[i + 1];
	if (kind == 3) {
		__u8 shift = w->opts[i + 2];
		w->wscale = (shift > OVSBPF_CT_MAX_WSCALE ? OVSBPF_CT_MAX_WSCALE : shift) | OVSBPF_TCP_WSCALE_FLAG;
		return 1;
	}
	w->at = i + (len < 2 ? 2 : len);
	return 0;
}

/*
 * The larger steps are global functions (ovsbpf_ct_*): the verifier checks
 * each once, with its arguments unknown, instead of once per path that
 * reaches it, which keeps ovsbpf_ct within the verifier's budget wherever
 * it is inlined.
 */

/* ovsbpf_ct_tcp_read fills seg from the TCP header at l4_off of the IPv4
 * packet at l3_off. Returns 0, or -1 if the header cannot be read (the
 * parser checked it, so only a packet changed under us). */
__attribute__((noinline)) int ovsbpf_ct_tcp_read(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, struct ct_tcp_seg *seg)
{
	if (!skb || !seg)
		return -1;
	struct tcphdr th;
	l3_off &= 0xffff;
	l4_off &= 0xffff;
	if (bpf_skb_load_bytes(skb, l4_off, &th, sizeof(th)) < 0)
		return -1;
	__be16 tot_be;
	if (bpf_skb_load_bytes(skb, l3_off + 2, &tot_be, 2) < 0)
		return -1;
	__u32 ip_end = l3_off + bpf_ntohs(tot_be);
	__u32 hlen = th.doff * 4;
	seg->seq = bpf_ntohl(th.seq);
	seg->ack = bpf_ntohl(th.ack_seq);
	seg->win = bpf_ntohs(th.window);
	seg->flags = bpf_ntohs(((__be16 *)&th)[6]) & 0x0fff;
	seg->len = ip_end > l4_off + hlen ? ip_end - l4_off - hlen : 0;
	seg->wscale = 0;
	if (!(seg->flags & CT_TCP_SYN) || hlen <= sizeof(th))
		return 0;

	/* A SYN's options: find the window scale (kind 3, length 3). The
	 * walk is a bpf_loop, so the verifier checks one step, not every
	 * layout of 40 bytes of options. */
	struct ct_opt_walk w = {.len = hlen - sizeof(th)};
	if (w.len > OVSBPF_CT_TCP_MAX_OPTS)
		w.len = OVSBPF_CT_TCP_MAX_OPTS;
	if (w.len == 0 || bpf_skb_load_bytes(skb, l4_off + sizeof(th), w.opts, w.len) < 0)
		return 0;
	bpf_loop(OVSBPF_CT_TCP_MAX_OPTS, ct_opt_step, &w, 0);
	seg->wscale = w.wscale;
	return 0;
}

/* A flag combination no TCP stack sends (pf normalises these away). */
static __always_inline int ct_tcp_invalid_flags(__u16 f)
{
	if (f & CT_TCP_SYN) {
		if (f & (CT_TCP_RST | CT_TCP_FIN))
			return 1;
	} else if (!(f & (CT_TCP_ACK | CT_TCP_RST))) {
		return 1;
	}
	if (!(f & CT_TCP_ACK) && (f & (CT_TCP_FIN | CT_TCP_PSH | CT_TCP_URG)))
		return 1;
	return 0;
}

static __always_inline __u32 ct_max1(__u32 v)
{
	return v ? v : 1;
}

/* ct_tcp_new fills a new connection's TCP state from its SYN. */
static __always_inline void ct_tcp_new(struct ovsbpf_ct_conn4 *c, const struct ct_tcp_seg *seg)
{
	struct ovsbpf_tcp_peer *src = &c->peer[0], *dst = &c->peer[1];
	src->end = seg->seq;
	src->maxend = seg->seq + seg->len + 2; /* the SYN, and one beyond */
	src->wscale = seg->wscale;
	__u32 win = seg->win ? seg->win : 1;
	__u8 sws = src->wscale & OVSBPF_TCP_WSCALE_MASK;
	if (sws)
		win = (win + (1U << sws) - 1) >> sws;
	src->maxwin = win;
	src->state = OVSBPF_TCPS_SYN_SENT;
	dst->end = 0;
	dst->maxend = 1;
	dst->maxwin = 1;
	dst->wscale = 0;
	dst->state = OVSBPF_TCPS_CLOSED;
}

/* ct_tcp_timeout picks the timeout class the peers' states call for. */
static __always_inline __u32 ct_tcp_timeout(__u8 s, __u8 d)
{
	if (s >= OVSBPF_TCPS_FIN_WAIT_2 && d >= OVSBPF_TCPS_FIN_WAIT_2)
		return OVSBPF_CT_TM_TCP_CLOSED;
	if (s >= OVSBPF_TCPS_CLOSING && d >= OVSBPF_TCPS_CLOSING)
		return OVSBPF_CT_TM_TCP_FIN_WAIT;
	if (s < OVSBPF_TCPS_ESTABLISHED || d < OVSBPF_TCPS_ESTABLISHED)
		return OVSBPF_CT_TM_TCP_OPENING;
	if (s >= OVSBPF_TCPS_CLOSING || d >= OVSBPF_TCPS_CLOSING)
		return OVSBPF_CT_TM_TCP_CLOSING;
	return OVSBPF_CT_TM_TCP_ESTABLISHED;
}

/*
 * ovsbpf_ct_tcp_update runs one segment of direction reply through pf's tracking
 * (the sequence tracking of van Rooij's "Real stateful TCP packet
 * filtering", as OpenBSD pf and OVS's conntrack-tcp.c do it). src is the
 * sender's state, dst the receiver's.
 *
 * A segment passes when its last byte lies within what the receiver's
 * window allows (end <= src.maxend), it is not more than one window back
 * (seq >= src.end - dst.maxwin), its ACK is neither more than
 * MAX_ACK_WINDOW behind nor a scaled window ahead of what the receiver
 * sent, and a RST carries the exact next sequence number (or one off).
 * A segment that fails but arrives while one side is closed or not yet
 * synchronised is accepted loosely when it lies within MAX_ACK_WINDOW
 * (retransmitted SYNs, stray FINs after close) without refreshing the
 * timeout; anything else is invalid and leaves the connection as it was.
 */
__attribute__((noinline)) int ovsbpf_ct_tcp_update(struct ovsbpf_ct_conn4 *c, int reply, struct ct_tcp_seg *seg,
						   __u32 liberal, __u32 now)
{
	if (!c || !seg)
		return CT_UPD_INVALID;
	struct ovsbpf_tcp_peer *src = &c->peer[reply & 1];
	struct ovsbpf_tcp_peer *dst = &c->peer[!reply];
	__u16 f = seg->flags;
	__u32 win = seg->win;
	__u8 sws = 0, dws = 0;

	if (ct_tcp_invalid_flags(f)) {
		ct_count(OVSBPF_CT_CNT_INV_FLAGS);
		return CT_UPD_INVALID;
	}
	if ((f & (CT_TCP_SYN | CT_TCP_ACK)) == CT_TCP_SYN) {
		/* A SYN on a connection both sides closed: port reuse. */
		if (dst->state >= OVSBPF_TCPS_FIN_WAIT_2 && src->state >= OVSBPF_TCPS_FIN_WAIT_2)
			return CT_UPD_REPLACE;
		if (src->state <= OVSBPF_TCPS_SYN_SENT) {
			/* A retransmitted SYN: still opening. */
			src->state = OVSBPF_TCPS_SYN_SENT;
			ct_set_expiry(c, OVSBPF_CT_TM_TCP_FIRST_PACKET, now);
			return CT_UPD_VALID_NEW;
		}
	}
	if ((src->wscale & OVSBPF_TCP_WSCALE_FLAG) && (dst->wscale & OVSBPF_TCP_WSCALE_FLAG) &&
	    !(f & CT_TCP_SYN)) {
		sws = src->wscale & OVSBPF_TCP_WSCALE_MASK;
		dws = dst->wscale & OVSBPF_TCP_WSCALE_MASK;
	}

	__u32 seq = seg->seq, orig_seq = seg->seq, end, ack = seg->ack;
	int check_ackskew = 1;
	if (src->state < OVSBPF_TCPS_SYN_SENT) {
		/* This side's first segment (the SYN|ACK). */
		end = seq + seg->len;
		if (f & CT_TCP_SYN) {
			end++;
			if (dst->wscale & OVSBPF_TCP_WSCALE_FLAG) {
				src->wscale = seg->wscale;
				if (src->wscale & OVSBPF_TCP_WSCALE_FLAG) {
					sws = src->wscale & OVSBPF_TCP_WSCALE_MASK;
					win = (win + (1U << sws) - 1) >> sws;
					dws = dst->wscale & OVSBPF_TCP_WSCALE_MASK;
				} else {
					/* No scaling after all: the other
					 * side's window was scaled. */
					dst->maxwin <<= dst->wscale & OVSBPF_TCP_WSCALE_MASK;
					dst->wscale = 0;
				}
			}
		}
		if (f & CT_TCP_FIN)
			end++;
		src->end = seq;
		src->state = OVSBPF_TCPS_SYN_SENT;
		__u32 room = ct_max1((__u32)dst->maxwin << dws);
		if (src->maxend == 1 || CT_SEQ_GEQ(end + room, src->maxend)) {
			src->maxend = end + room;
			check_ackskew = 0;
		}
		if (win > src->maxwin)
			src->maxwin = win;
	} else {
		end = seq + seg->len;
		if (f & CT_TCP_SYN)
			end++;
		if (f & CT_TCP_FIN)
			end++;
	}

	if (!(f & CT_TCP_ACK))
		ack = dst->end; /* nothing acknowledged: let it pass the skew check */
	else if (ack == 0 && (f & (CT_TCP_ACK | CT_TCP_RST)) == (CT_TCP_ACK | CT_TCP_RST))
		ack = dst->end; /* stacks that leave the ACK of a RST at 0 */
	if (seq == end) {
		/* No data: only the ACK matters. */
		seq = src->end;
		end = seq;
	}

	__s32 ackskew = check_ackskew ? (__s32)(dst->end - ack) : 0;
	int in_window = CT_SEQ_GEQ(src->maxend, end) &&
			CT_SEQ_GEQ(seq, src->end - ((__u32)dst->maxwin << dws)) &&
			ackskew >= -OVSBPF_CT_MAX_ACK_WINDOW &&
			ackskew <= ((__s32)OVSBPF_CT_MAX_ACK_WINDOW << sws) &&
			(!(f & CT_TCP_RST) || orig_seq == src->end || orig_seq == src->end + 1 ||
			 orig_seq + 1 == src->end);

	if (in_window || liberal) {
		if (win > src->maxwin)
			src->maxwin = win;
		if (CT_SEQ_GT(end, src->end))
			src->end = end;
		if (CT_SEQ_GEQ(ack + (win << sws), dst->maxend))
			dst->maxend = ack + ct_max1(win << sws);
		if ((f & CT_TCP_SYN) && src->state < OVSBPF_TCPS_SYN_SENT)
			src->state = OVSBPF_TCPS_SYN_SENT;
		if ((f & CT_TCP_FIN) && src->state < OVSBPF_TCPS_CLOSING)
			src->state = OVSBPF_TCPS_CLOSING;
		if (f & CT_TCP_ACK) {
			if (dst->state == OVSBPF_TCPS_SYN_SENT)
				dst->state = OVSBPF_TCPS_ESTABLISHED;
			else if (dst->state == OVSBPF_TCPS_CLOSING)
				dst->state = OVSBPF_TCPS_FIN_WAIT_2;
		}
		if (f & CT_TCP_RST)
			src->state = dst->state = OVSBPF_TCPS_TIME_WAIT;
		ct_set_expiry(c, ct_tcp_timeout(src->state, dst->state), now);
		return CT_UPD_VALID;
	}
	if ((dst->state < OVSBPF_TCPS_SYN_SENT || dst->state >= OVSBPF_TCPS_FIN_WAIT_2 ||
	     src->state >= OVSBPF_TCPS_FIN_WAIT_2) &&
	    CT_SEQ_GEQ(src->maxend + OVSBPF_CT_MAX_ACK_WINDOW, end) &&
	    CT_SEQ_GEQ(seq, src->end - OVSBPF_CT_MAX_ACK_WINDOW)) {
		/* Loosely in window around an unsynchronised or closed end:
		 * accept, do not refresh. */
		if (win > src->maxwin)
			src->maxwin = win;
		if (CT_SEQ_GT(end, src->end))
			src->end = end;
		if (CT_SEQ_GEQ(ack + (win << sws), dst->maxend))
			dst->maxend = ack + ct_max1(win << sws);
		if ((f & CT_TCP_FIN) && src->state < OVSBPF_TCPS_CLOSING)
			src->state = OVSBPF_TCPS_CLOSING;
		if (f & CT_TCP_RST)
			src->state = dst->state = OVSBPF_TCPS_TIME_WAIT;
		return CT_UPD_VALID;
	}
	ct_count(OVSBPF_CT_CNT_INV_WINDOW);
	return CT_UPD_INVALID;
}

/* ct_apply_writes applies a commit's mark and label writes to c. */
static __always_inline void ct_apply_writes(struct ovsbpf_ct_conn4 *c, const struct ovsbpf_ct_params *prm)
{
	if (!(prm->flags & OVSBPF_CTP_COMMIT))
		return;
	if (prm->flags & OVSBPF_CTP_SET_MARK)
		c->mark = (c->mark & ~prm->mark_mask) | (prm->mark & prm->mark_mask);
	if (prm->flags & OVSBPF_CTP_SET_LABEL) {
#pragma unroll
		for (int i = 0; i < 16; i++)
			c->label[i] = (c->label[i] & ~prm->label_mask[i]) | (prm->label[i] & prm->label_mask[i]);
	}
}

/* Why ct_create stored nothing. */
enum ct_create_fail {
	CT_CREATE_FULL = 1, /* max_conns, the capacity or the index is full */
	CT_CREATE_RACE,     /* another CPU stored the same tuple first */
};

/* ct_create stores a new connection for tuple t (the packet's, original
 * direction). Returns the connection, or NULL with *why set (counted). */
static __always_inline struct ovsbpf_ct_conn4 *ct_create(const struct ovsbpf_ct_tuple4 *t, const struct ct_tcp_seg *seg,
							 __u32 now, int *why)
{
	__u32 zero = 0;
	struct ovsbpf_ct_alloc *a = bpf_map_lookup_elem(&ct_alloc, &zero);
	struct ovsbpf_ct_config *cfg = bpf_map_lookup_elem(&ct_config, &zero);
	*why = CT_CREATE_FULL;
	if (!a || !cfg)
		return NULL;
	__u32 max = cfg->max_conns;
	if (max == 0 || max > OVSBPF_CT_CAPACITY)
		max = OVSBPF_CT_CAPACITY;
	if (a->created - a->freed >= max) {
		ct_count(OVSBPF_CT_CNT_REFUSED_FULL);
		return NULL;
	}
	__u32 id;
	struct ovsbpf_ct_conn4 *c;
	if (bpf_map_pop_elem(&ct_free4, &id) == 0) {
		c = bpf_map_lookup_elem(&ct_conns4, &id);
		if (!c)
			return NULL; /* not an id of this table: drop it */
	} else {
		/* No freed id: a never used one, if the array has any left
		 * (its size is the loader's choice, so the lookup tells). */
		id = __sync_fetch_and_add(&a->next_id, 1);
		c = bpf_map_lookup_elem(&ct_conns4, &id);
		if (!c) {
			/* Every id is in use: give the increment back, so
			 * next_id stays near the capacity. */
			__sync_fetch_and_sub(&a->next_id, 1);
			ct_count(OVSBPF_CT_CNT_REFUSED_FULL);
			return NULL;
		}
	}
	__u32 gen = c->gen + 1;
	__builtin_memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->orig = *t;
	ct_tuple_reverse(&c->reply, t);
	if (t->proto == IPPROTO_TCP) {
		ct_tcp_new(c, seg);
		c->expires = now + ct_timeout_ms(OVSBPF_CT_TM_TCP_FIRST_PACKET);
	} else if (t->proto == IPPROTO_ICMP) {
		c->expires = now + ct_timeout_ms(OVSBPF_CT_TM_ICMP_FIRST);
	} else {
		c->expires = now + ct_timeout_ms(OVSBPF_CT_TM_OTHER_FIRST);
	}
	c->flags = OVSBPF_CTF_LIVE;

	struct ovsbpf_ct_ref ref = {.conn = id, .dir = 1};
	long err = bpf_map_update_elem(&ct_index4, &c->reply, &ref, BPF_NOEXIST);
	if (err < 0)
		goto lost;
	ref.dir = 0;
	err = bpf_map_update_elem(&ct_index4, &c->orig, &ref, BPF_NOEXIST);
	if (err < 0) {
		bpf_map_delete_elem(&ct_index4, &c->reply);
		goto lost;
	}
	__sync_fetch_and_add(&a->created, 1);
	ct_count(OVSBPF_CT_CNT_CREATED);
	return c;
lost:
	c->flags = 0;
	bpf_map_push_elem(&ct_free4, &id, 0);
	if (err == -17 /* EEXIST */) {
		*why = CT_CREATE_RACE;
		ct_count(OVSBPF_CT_CNT_RACES);
	} else {
		ct_count(OVSBPF_CT_CNT_REFUSED_FULL); /* the index is full */
	}
	return NULL;
}

/* The ICMP types that open a query connection (OVS's icmp4_valid_new) and
 * their answers. */
static __always_inline int ct_icmp_query(__u8 type)
{
	return type == 8 || type == 0 || type == 13 || type == 14 || type == 15 || type == 16;
}

static __always_inline int ct_icmp_request(__u8 type)
{
	return type == 8 || type == 13 || type == 15;
}

static __always_inline void ct_key_from_conn(struct ovsbpf_key *key, const struct ovsbpf_ct_conn4 *c)
{
	key->n.ct_mark = c->mark;
	__builtin_memcpy(key->w.ct_label, c->label, 16);
}

/*
 * ovsbpf_ct tracks the packet in the zone params[params_index] names and
 * fills key's ct_state, ct_zone, ct_mark and ct_label. It returns 0, or a
 * negative value on an internal error (no params slot): the datapath then
 * drops the packet and counts it. It never redirects and never changes
 * the packet.
 *
 * A packet of a known connection updates it (TCP through pf's tracking)
 * and is est, or new while no reply has been seen (OVS's VALID_NEW), with
 * rpl in the reply direction. A packet of no connection is new when it
 * may open one (a TCP SYN without ACK, an ICMP query request, any UDP or
 * other IP packet) and is stored only under COMMIT; otherwise it is inv.
 * A packet the tracker rejects is trk|inv and keeps the connection's mark
 * and label, as OVS's userspace datapath reports them.
 */
static __always_inline int ovsbpf_ct(struct __sk_buff *skb, struct ovsbpf_key *key, struct pkt *p, __u32 params_index)
{
	struct ovsbpf_ct_params *prm = bpf_map_lookup_elem(&ct_params, &params_index);
	if (!prm)
		return -1;
	__u32 zero = 0;
	struct ovsbpf_ct_config *cfg = bpf_map_lookup_elem(&ct_config, &zero);
	if (!cfg)
		return -1;
	__u32 liberal = cfg->flags & OVSBPF_CT_CFG_LIBERAL;
	__u16 flags = prm->flags;
	__u32 now = ct_now_ms();

	key->n.ct_zone = prm->zone;
	key->n.ct_mark = 0;
	__builtin_memset(key->w.ct_label, 0, 16);
	key->n.ct_state = OVSBPF_CS_TRK;

	if (key->n.eth_type != bpf_htons(ETH_P_IP) || key->n.nw_frag || !p->l4_off) {
		/* IPv6, fragments and headerless packets: later steps. */
		key->n.ct_state |= OVSBPF_CS_INV;
		ct_count(OVSBPF_CT_CNT_INV_UNSUPPORTED);
		return 0;
	}

	struct ovsbpf_ct_tuple4 t = {
		.zone = prm->zone,
		.proto = key->n.nw_proto,
		.src = key->n.nw_src,
		.dst = key->n.nw_dst,
	};
	struct ct_tcp_seg seg = {};
	int valid_new = 1;
	switch (t.proto) {
	case IPPROTO_TCP:
		if (ovsbpf_ct_tcp_read(skb, p->l3_off, p->l4_off, &seg) < 0)
			return -1;
		t.sport = key->n.tp_src;
		t.dport = key->n.tp_dst;
		/* Only a SYN opens a connection (no mid-stream pickup). */
		valid_new = !ct_tcp_invalid_flags(seg.flags) &&
			    (seg.flags & (CT_TCP_SYN | CT_TCP_ACK)) == CT_TCP_SYN;
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		t.sport = key->n.tp_src;
		t.dport = key->n.tp_dst;
		break;
	case IPPROTO_ICMP: {
		__u8 type = bpf_ntohs(key->n.tp_src), code = bpf_ntohs(key->n.tp_dst);
		__be16 id;
		if (!ct_icmp_query(type) || bpf_skb_load_bytes(skb, p->l4_off + 4, &id, 2) < 0) {
			/* Errors (related) come in a later step. */
			key->n.ct_state |= OVSBPF_CS_INV;
			ct_count(OVSBPF_CT_CNT_INV_UNSUPPORTED);
			return 0;
		}
		t.sport = id;
		__u8 *tc = (__u8 *)&t.dport;
		tc[0] = type;
		tc[1] = code;
		valid_new = ct_icmp_request(type);
		break;
	}
	}

	struct ovsbpf_ct_conn4 *c = NULL;
	int reply = 0;
	struct ovsbpf_ct_ref *ref = bpf_map_lookup_elem(&ct_index4, &t);
	if (ref) {
		__u32 id = ref->conn;
		reply = ref->dir & 1;
		c = bpf_map_lookup_elem(&ct_conns4, &id);
		if (c && (!(c->flags & OVSBPF_CTF_LIVE) || !ct_tuple_eq(reply ? &c->reply : &c->orig, &t))) {
			/* A stale entry: its connection is gone. */
			if (flags & OVSBPF_CTP_COMMIT)
				bpf_map_delete_elem(&ct_index4, &t);
			c = NULL;
		} else if (c && ct_expired(c, now)) {
			if (flags & OVSBPF_CTP_COMMIT) {
				ct_free_conn(id, c);
				ct_count(OVSBPF_CT_CNT_RECLAIMED);
			}
			c = NULL;
		} else if (c && reply && (flags & OVSBPF_CTP_FORCE)) {
			/* force: a connection seen from the wrong side ends. */
			ct_free_conn(id, c);
			ct_count(OVSBPF_CT_CNT_REPLACED);
			c = NULL;
		}
		if (c) {
			int res;
			if (t.proto == IPPROTO_TCP) {
				res = ovsbpf_ct_tcp_update(c, reply, &seg, liberal, now);
			} else {
				__u32 bit = reply ? OVSBPF_CTF_SEEN_REPLY : OVSBPF_CTF_MULTIPLE;
				__u32 cf = c->flags | bit;
				int icmp = t.proto == IPPROTO_ICMP;
				if (!(c->flags & bit))
					__sync_fetch_and_or(&c->flags, bit);
				__u32 tm;
				if (cf & OVSBPF_CTF_SEEN_REPLY)
					tm = icmp ? OVSBPF_CT_TM_ICMP_REPLY : OVSBPF_CT_TM_OTHER_BIDIR;
				else
					tm = icmp ? OVSBPF_CT_TM_ICMP_FIRST : OVSBPF_CT_TM_OTHER_MULTIPLE;
				ct_set_expiry(c, tm, now);
				res = (cf & OVSBPF_CTF_SEEN_REPLY) ? CT_UPD_VALID : CT_UPD_VALID_NEW;
			}
			switch (res) {
			case CT_UPD_VALID:
				if (reply && !(c->flags & OVSBPF_CTF_SEEN_REPLY))
					__sync_fetch_and_or(&c->flags, OVSBPF_CTF_SEEN_REPLY);
				key->n.ct_state |= OVSBPF_CS_EST | (reply ? OVSBPF_CS_RPL : 0);
				break;
			case CT_UPD_VALID_NEW:
				key->n.ct_state |= OVSBPF_CS_NEW;
				break;
			case CT_UPD_INVALID:
				key->n.ct_state |= OVSBPF_CS_INV;
				break;
			default: /* CT_UPD_REPLACE */
				ct_free_conn(id, c);
				ct_count(OVSBPF_CT_CNT_REPLACED);
				c = NULL;
				break;
			}
		}
	}

	if (!c) {
		if (!valid_new) {
			key->n.ct_state |= OVSBPF_CS_INV;
			ct_count(OVSBPF_CT_CNT_INV_NO_CONN);
			return 0;
		}
		key->n.ct_state |= OVSBPF_CS_NEW;
		if (!(flags & OVSBPF_CTP_COMMIT))
			return 0;
		int why;
		c = ct_create(&t, &seg, now, &why);
		if (!c) {
			/* Lost to a simultaneous create of the same
			 * connection: new, as the winner's packet is. Refused
			 * (full): inv, so policy drops it rather than let a
			 * connection through that its replies cannot match. */
			if (why == CT_CREATE_FULL)
				key->n.ct_state = OVSBPF_CS_TRK | OVSBPF_CS_INV;
			return 0;
		}
	}
	ct_apply_writes(c, prm);
	ct_key_from_conn(key, c);
	return 0;
}

#endif
