#!/bin/sh
# The reference TSN metadata proxy's cost, measured: TCP and UDP throughput from a pod to
# an external host through a routed, masquerading node, without and then with the proxy
# (saver on the pod's eth0, restorer on the node's NIC), in one run, as a ratio; and UDP
# request/response latency (a python3 ping-pong, 20 000 round trips, p50 and p99).
# Needs root, iperf3 (`apt-get install iperf3`) and a built proxy (`cargo build --bin
# tsn-metadata-proxy`). Usage: bench/tsn-proxy-overhead.sh [seconds per measurement]
set -eu
SECONDS_EACH=${1:-5}
PROXY=${PROXY:-target/debug/tsn-metadata-proxy}
N=tsnbench-node P=tsnbench-pod X=tsnbench-ext B=$(mktemp -d)
cleanup() { ip netns del $N 2>/dev/null; ip netns del $P 2>/dev/null; ip netns del $X 2>/dev/null; umount $B 2>/dev/null; rmdir $B; }
trap cleanup EXIT
ip netns add $N; ip netns add $P; ip netns add $X
ip link add eth0 netns $N type veth peer name eth0 netns $X
ip link add vpod netns $N type veth peer name eth0 netns $P
ip -n $N addr add 192.168.77.1/24 dev eth0; ip -n $N link set eth0 up; ip -n $N link set lo up
ip -n $X addr add 192.168.77.2/24 dev eth0; ip -n $X link set eth0 up; ip -n $X link set lo up
ip -n $N addr add 10.77.0.1/24 dev vpod; ip -n $N link set vpod up
ip -n $P addr add 10.77.0.2/24 dev eth0; ip -n $P link set eth0 up; ip -n $P link set lo up; ip -n $P route add default via 10.77.0.1
ip netns exec $N sysctl -qw net.ipv4.ip_forward=1
ip netns exec $N iptables -t nat -A POSTROUTING -s 10.77.0.0/24 -o eth0 -j MASQUERADE
mount -t bpf bpf $B
ip netns exec $X iperf3 -s -D -1 >/dev/null 2>&1 || true
RR_SERVER='import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 7777))
while True:
    data, peer = s.recvfrom(64); s.sendto(data, peer)'
RR_CLIENT='import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 1)
s.connect(("192.168.77.2", 7777)); s.settimeout(1); times = []
for i in range(20000):
    t = time.perf_counter_ns(); s.send(b"x"); s.recv(64); times.append(time.perf_counter_ns() - t)
times.sort(); print(times[len(times) // 2] / 1000, times[len(times) * 99 // 100] / 1000)'
ip netns exec $X python3 -c "$RR_SERVER" & RR_PID=$!
sleep 1
trap 'kill $RR_PID 2>/dev/null; cleanup' EXIT
measure() { # $1: label
  echo "$1 rr $(ip netns exec $P python3 -c "$RR_CLIENT")"
  for proto in tcp udp; do
    ip netns exec $X iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.2
    flag=""; [ $proto = udp ] && flag="-u -b 0 -l 1400"
    bps=$(ip netns exec $P iperf3 -c 192.168.77.2 -t "$SECONDS_EACH" -J $flag -S 0 | python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]; print(int((d.get("sum_received") or d["sum"])["bits_per_second"]))')
    echo "$1 $proto $bps"
  done
}
measure without > $B.results
CONF='{"cniVersion":"1.0.0","name":"bench","type":"tsn-metadata-proxy","nic":"eth0","bpffs":"'$B'","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"vpod"},{"name":"eth0","sandbox":"/run/netns/'$P'"}],"ips":[]}}'
echo "$CONF" | ip netns exec $N env CNI_COMMAND=ADD CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$P CNI_IFNAME=eth0 "$PROXY" >/dev/null
measure with >> $B.results
python3 - "$B.results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
r = {(row[0], row[1]): int(row[2]) for row in rows if row[1] != "rr"}
rr = {row[0]: (float(row[2]), float(row[3])) for row in rows if row[1] == "rr"}
for q, name in ((0, "p50"), (1, "p99")):
    a, b = rr["without"][q], rr["with"][q]
    print(f"udp request/response {name}: without proxy {a:.1f} us, with proxy {b:.1f} us, ratio {b/a:.3f}")
for p in ("tcp", "udp"):
    a, b = r[("without", p)], r[("with", p)]
    print(f"{p}: without proxy {a/1e9:.2f} Gbit/s, with proxy {b/1e9:.2f} Gbit/s, ratio {b/a:.3f}")
PY
rm -f $B.results
echo "$CONF" | ip netns exec $N env CNI_COMMAND=DEL CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$P CNI_IFNAME=eth0 "$PROXY"
