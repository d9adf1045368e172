// SPDX-License-Identifier: GPL-2.0
// The node NIC's priority-to-class map, as taprio's `map` does on a TSN NIC, for an HTB
// qdisc (this kernel has no taprio or mqprio, and no `basic` classifier to match a
// priority): a talker's packet with priority 1 -> class 1:1, 2 -> 1:2, any other
// priority -> 1:3 (best effort). Talkers send to the listeners' port (8080), directly or
// through a VXLAN tunnel (4789, Flannel's 8472), the port then read from the inner packet.
// Everything else goes to 1:4: what is not IPv4 (ARP), a tunnel's own ARP, and the node's
// control traffic (kubelet, API server on a kind node), so nothing but the talkers can
// make a class look right, or a right class look wrong. Loaded with
// `tc filter ... bpf obj tsn_classify.o sec classifier` (the return value is the class id).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CLASS(minor) (0x10000u | (minor))
#define ETHERNET_HEADER 14
#define TALKER_PORT 8080

/* The destination port of the TCP or UDP packet whose IPv4 header starts at `ip`; 0 when
 * it has none. */
static __always_inline __u16 destination_port(struct __sk_buff *skb, __u32 ip, __u32 *l4)
{
	__u8 header[10];
	__u16 port;

	if (bpf_skb_load_bytes(skb, ip, header, sizeof(header)) < 0)
		return 0;
	if (header[9] != IPPROTO_UDP && header[9] != IPPROTO_TCP)
		return 0;
	*l4 = ip + (header[0] & 0xf) * 4;
	if (bpf_skb_load_bytes(skb, *l4 + 2, &port, sizeof(port)) < 0)
		return 0;
	return bpf_ntohs(port);
}

/* Whether the packet (Ethernet, IPv4) is a talker's: to the listeners' port, directly or
 * inside a VXLAN tunnel that carries IPv4. */
static __always_inline int from_a_talker(struct __sk_buff *skb)
{
	__u32 l4 = 0, inner_l4 = 0;
	__u16 port = destination_port(skb, ETHERNET_HEADER, &l4);
	__u16 inner_type;

	if (port == 4789 || port == 8472) {
		/* UDP header (8), VXLAN header (8), inner destination and source MAC (12). */
		__u32 inner = l4 + 8 + 8;
		if (bpf_skb_load_bytes(skb, inner + 12, &inner_type, sizeof(inner_type)) < 0 || inner_type != bpf_htons(ETH_P_IP))
			return 0;
		port = destination_port(skb, inner + ETHERNET_HEADER, &inner_l4);
	}
	return port == TALKER_PORT;
}

#ifdef DELIVERY_TIME
/* Built with -DDELIVERY_TIME it sorts a talker's packets by the delivery time they carry
 * (SO_TXTIME) instead: 1:1 on CLOCK_TAI and between DELAY - TOLERANCE and DELAY ahead of
 * the NIC's own TAI clock (the talker sets now + DELAY), 1:2 set but on another clock or
 * off, 1:3 none (lost on the way). */
#define DELAY_NS 500000000ull
#define TOLERANCE_NS 100000000ull
/* The kernel's BPF_SKB_CLOCK_TAI (uapi headers before 6.11 do not name it). */
#define SKB_CLOCK_TAI 2

static __always_inline __u32 delivery_time_class(struct __sk_buff *skb)
{
	__u64 at = skb->tstamp, now = bpf_ktime_get_tai_ns();

	if (!at)
		return CLASS(3);
	if (skb->tstamp_type == SKB_CLOCK_TAI && at > now && at - now <= DELAY_NS && at - now >= DELAY_NS - TOLERANCE_NS)
		return CLASS(1);
	return CLASS(2);
}
#endif

SEC("classifier")
int tsn_classify(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP) || !from_a_talker(skb))
		return CLASS(4);
#ifdef DELIVERY_TIME
	return delivery_time_class(skb);
#endif
	switch (skb->priority) {
	case 1:
		return CLASS(1);
	case 2:
		return CLASS(2);
	default:
		return CLASS(3);
	}
}

char LICENSE[] SEC("license") = "GPL";
