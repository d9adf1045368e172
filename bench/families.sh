#!/bin/sh
# The time of every family of a certification, so a regression in any of them is visible:
# runs `cargo xtask certify` (default profile, or the one given) RUNS times (default 3) and
# prints, per run, each family's suite time and its slowest scenario, from the summaries
# the suites write (target/cni-conformance/certification/<profile>/<family>/summary.json), then
# the whole. Not a test: it judges nothing, it prints. As root, after `cargo xtask deps`.
# Usage: bench/families.sh [runs] [profile]
set -eu
runs=${1:-3}
profile=${2:-reference-tsn-proxy}
for run in $(seq "$runs"); do
  start=$(date +%s.%N)
  cargo xtask certify --cni "$profile" >/dev/null 2>&1 || echo "run $run: certify did not pass (its report says why)"
  end=$(date +%s.%N)
  python3 - "$run" "$profile" "$start" "$end" <<'PY'
import glob, json, os, sys
run, profile, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
# The certification just written: the newest report directory (named after the profile).
out = max(glob.glob(os.path.join("target", "cni-conformance", "certification", "*", "")), key=os.path.getmtime)
total = 0.0
print(f"run {run} ({profile}):")
for family in ["cni_spec", "egress", "canary", "tsn", "perf"]:
    path = os.path.join(out, family, "summary.json")
    if not os.path.exists(path):
        continue
    summary = json.load(open(path))
    total += summary["elapsed_seconds"]
    slowest = max(summary.get("scenarios", []), key=lambda s: s.get("seconds", 0), default=None)
    detail = f", slowest {slowest['scenario']} {slowest['seconds']:.1f} s" if slowest else ""
    print(f"  {family:9} {summary['elapsed_seconds']:6.1f} s{detail}")
print(f"  suites    {total:6.1f} s; certify, build check included, {end - start:.1f} s")
PY
done
