#!/bin/sh
# The cost curve of pod network start-up against pods started together (1, 10, 50 by
# default, `load.startupPods` of fixtures/budgets/performance.yaml), and of the lab itself:
# cluster ready and the scenario's time (it starts 10 + 1 + 10 + 50 pods and tears them
# down). Runs the start-up scenario of perf_lab RUNS times (default 3), as root.
set -eu
runs=${1:-3}
cargo build -q --tests
for run in $(seq "$runs"); do
  cargo test -q --test perf_lab -- --exact pod_network_start_up_time_is_within_budget >/dev/null 2>&1 || true
  python3 - "$run" <<'PY'
import json, sys
figures = json.load(open("target/cni-conformance/perf_lab/figures.json"))["figures"]
summary = json.load(open("target/cni-conformance/perf_lab/summary.json"))
def p95(samples):
    s = sorted(samples); return s[max(0, -(-95 * len(s) // 100) - 1)]
row = {f["name"].removeprefix("startup.pod-network."): f for f in figures if f["name"].startswith("startup.")}
one = row["1-pod"]
print(f"run {sys.argv[1]}: cluster ready {summary['cluster_ready_seconds']:.2f} s, scenario {summary['scenarios'][0]['seconds']:.1f} s, suite {summary['elapsed_seconds']:.1f} s")
print(f"  1 pod:   median {one['estimate']:.0f} ms, p95 {p95(one['samples']):.0f} ms")
for name, f in row.items():
    if name.endswith("-pods"):
        print(f"  {name.removesuffix('-pods')} pods: median {f['estimate']:.0f} ms, p95 {row[name + '.p95']['estimate']:.0f} ms")
PY
done
