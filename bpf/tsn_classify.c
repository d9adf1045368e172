// SPDX-License-Identifier: GPL-2.0
// The node NIC's priority-to-class map, as taprio's `map` does on a TSN NIC, for an HTB
// qdisc (this kernel has no taprio or mqprio, and no `basic` classifier to match a
// priority): priority 1 -> class 1:1, 2 -> 1:2, any other IPv4 packet -> 1:3 (best effort).
// What is not IPv4 (ARP, IPv6 neighbour discovery) goes to 1:4, so it can never make a
// class look right; so does what a VXLAN tunnel (4789, Flannel's 8472) carries when it
// is not IPv4 inside (the ARP a node sends through the tunnel to the egress gateway), so
// it cannot make a right class look wrong either. Loaded with `tc filter ... bpf obj tsn_classify.o sec classifier`
// (not direct-action: the return value is the class id).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CLASS(minor) (0x10000u | (minor))
#define ETH_HLEN_ 14

/* Whether an IPv4 packet is VXLAN carrying something other than IPv4. */
static __always_inline int tunnels_non_ipv4(struct __sk_buff *skb)
{
	__u8 ip[10];
	__u16 port, inner;

	if (bpf_skb_load_bytes(skb, ETH_HLEN_, ip, sizeof(ip)) < 0 || ip[9] != IPPROTO_UDP)
		return 0;
	__u32 udp = ETH_HLEN_ + (ip[0] & 0xf) * 4;
	if (bpf_skb_load_bytes(skb, udp + 2, &port, sizeof(port)) < 0)
		return 0;
	if (port != bpf_htons(4789) && port != bpf_htons(8472))
		return 0;
	/* UDP header (8), VXLAN header (8), inner destination and source MAC (12). */
	if (bpf_skb_load_bytes(skb, udp + 8 + 8 + 12, &inner, sizeof(inner)) < 0)
		return 0;
	return inner != bpf_htons(ETH_P_IP);
}

SEC("classifier")
int tsn_classify(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP) || tunnels_non_ipv4(skb))
		return CLASS(4);
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
