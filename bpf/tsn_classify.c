// SPDX-License-Identifier: GPL-2.0
// The node NIC's priority-to-class map, as taprio's `map` does on a TSN NIC, for an HTB
// qdisc (this kernel has no taprio or mqprio, and no `basic` classifier to match a
// priority): priority 1 -> class 1:1, 2 -> 1:2, any other IPv4 packet -> 1:3 (best effort).
// What is not IPv4 (ARP, IPv6 neighbour discovery) goes to 1:4, so it can never make a
// class look right. Loaded with `tc filter ... bpf obj tsn_classify.o sec classifier`
// (not direct-action: the return value is the class id).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CLASS(minor) (0x10000u | (minor))

SEC("classifier")
int tsn_classify(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
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
