// SPDX-License-Identifier: GPL-2.0
// The reference TSN metadata proxy's datapath (the seeds' paper, section 4).
//
// A pod's SO_PRIORITY is reset to 0 when its packet crosses the pod's veth, and routing
// then sets it from the IP TOS, so the node NIC's TSN qdisc never sees it (LAB-NOTES).
// What does survive the crossing, forwarding, NAT and VXLAN encapsulation is the skb
// itself and its flow hash. So:
//   save_prio    (tc egress of the pod's interface, inside the pod) writes the priority
//                into the packet's flow hash, tagged: TAG | priority;
//   restore_prio (tc egress of the node's NIC, after forwarding) puts a tagged packet's
//                priority back into skb->priority, where the NIC's qdisc reads it.
// The metadata travels with the packet: no map, no per-packet state, nothing that a
// packet which never reaches the NIC could leave behind. Priorities 1..15 are carried
// (taprio's map covers 0..15); 0 is best effort and is left alone.
//
// Built with -DKEEP_PER_PACKET_STATE it is a deliberately broken proxy for the suites'
// self-tests: the saver also records the last priority of an IPv4 packet in a node-wide
// pinned map that only a tagged packet reaching the NIC clears, and the restorer hands a
// recorded priority to every untagged IPv4 packet until then. Traffic that never reaches
// the NIC (to the pod's own node, to a pod beside it) then leaks its priority into later
// best-effort packets. (IPv4 only: a pod's ARP has priority 7, TC_PRIO_CONTROL.)
//
// Built with -DKEY_BY_PACKET_ADDRESS it is the paper's map design with a fault a real
// proxy had: the saver records every IPv4 packet's priority (0 included) in a node-wide
// hash map keyed by the packet's address (its skb), never overwriting an entry it finds;
// the restorer looks the packet's address up, restores what it finds and removes it; an
// entry older than CLEAN_UP_NS counts as gone, as the paper's periodic garbage collector
// would have removed it. A packet that never reaches the NIC leaves its entry behind, and
// the next packet the kernel builds at the same address (the skb cache hands the freed
// one out again) is restored to that priority. Only traffic interleaved within the clean-
// up period shows it. The real proxy cleaned up after about a second, and on kind talks
// (each a `kubectl exec`) are further apart than that; the lab's talks are at least
// 100 ms apart (the suite waits that long for the NIC to settle between them), so here
// the clean-up period is half that: talks one after another cannot see the fault, as on
// kind they could not.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TAG 0x7e500000u
#define TAG_MASK 0xfffffff0u
#define PRIORITY_MASK 0xfu

// Set at load by the self-test fault `swap-priorities`: restore 1 as 2 and 2 as 1.
volatile const __u32 swap_priorities = 0;
// Set at load by the self-test fault `clear-delivery-time`: a restorer that drops the
// packet's delivery time (SO_TXTIME) while it restores the priority.
volatile const __u32 clear_delivery_time = 0;
// Set at load by the self-test fault `stamp-best-effort`: a restorer that gives every
// untagged (best-effort) IPv4 packet a delivery time no talker set, as a proxy restoring
// a stale saved time would (on the monotonic clock, half a second ahead).
volatile const __u32 stamp_best_effort = 0;

static __always_inline __u32 restored(__u32 priority)
{
	if (swap_priorities && (priority == 1 || priority == 2))
		return 3 - priority;
	return priority;
}

#ifdef KEEP_PER_PACKET_STATE
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pending SEC(".maps");
#endif

#ifdef KEY_BY_PACKET_ADDRESS
#define CLEAN_UP_NS 50000000ull

struct saved {
	__u64 at_ns;
	__u32 priority;
	__u32 unused;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct saved);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} by_address SEC(".maps");

// The packet's address: the skb the context stands for (a pointer used as a number,
// which the verifier allows a privileged loader).
static __always_inline __u64 address_of(struct __sk_buff *skb)
{
	return (__u64)(unsigned long)skb;
}

static __always_inline int fresh(const struct saved *entry, __u64 now)
{
	return entry && now - entry->at_ns < CLEAN_UP_NS;
}
#endif

SEC("classifier/save")
int save_prio(struct __sk_buff *skb)
{
	__u32 priority = skb->priority;

#ifdef KEY_BY_PACKET_ADDRESS
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u64 key = address_of(skb), now = bpf_ktime_get_ns();
		struct saved entry = { .at_ns = now, .priority = priority & PRIORITY_MASK };

		if (!fresh(bpf_map_lookup_elem(&by_address, &key), now))
			bpf_map_update_elem(&by_address, &key, &entry, BPF_ANY);
	}
	return TC_ACT_UNSPEC;
#endif
	if (priority >= 1 && priority <= PRIORITY_MASK) {
		bpf_set_hash(skb, TAG | priority);
#ifdef KEEP_PER_PACKET_STATE
		__u32 key = 0;
		if (skb->protocol == bpf_htons(ETH_P_IP))
			bpf_map_update_elem(&pending, &key, &priority, BPF_ANY);
#endif
	}
	// Let whatever else is attached here run too (tcx: next program).
	return TC_ACT_UNSPEC;
}

SEC("classifier/restore")
int restore_prio(struct __sk_buff *skb)
{
	__u32 hash = skb->hash;

#ifdef KEY_BY_PACKET_ADDRESS
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u64 key = address_of(skb);
		struct saved *entry = bpf_map_lookup_elem(&by_address, &key);

		if (fresh(entry, bpf_ktime_get_ns()))
			skb->priority = restored(entry->priority);
		if (entry)
			bpf_map_delete_elem(&by_address, &key);
	}
	return TC_ACT_UNSPEC;
#endif
#ifdef KEEP_PER_PACKET_STATE
	__u32 key = 0, none = 0;
	__u32 *recorded = bpf_map_lookup_elem(&pending, &key);

	if ((hash & TAG_MASK) == TAG) {
		skb->priority = restored(hash & PRIORITY_MASK);
		bpf_map_update_elem(&pending, &key, &none, BPF_ANY);
	} else if (recorded && *recorded && skb->protocol == bpf_htons(ETH_P_IP)) {
		skb->priority = restored(*recorded);
	}
#else
	if ((hash & TAG_MASK) == TAG)
		skb->priority = restored(hash & PRIORITY_MASK);
#endif
	if (clear_delivery_time && (hash & TAG_MASK) == TAG)
		bpf_skb_set_tstamp(skb, 0, BPF_SKB_TSTAMP_UNSPEC);
	if (stamp_best_effort && (hash & TAG_MASK) != TAG && skb->protocol == bpf_htons(ETH_P_IP))
		bpf_skb_set_tstamp(skb, bpf_ktime_get_ns() + 500000000ull, BPF_SKB_TSTAMP_DELIVERY_MONO);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
