#!/usr/bin/env bash
# Builds dohd and the benchmarks, then runs one of them (bench/NAME.ts, compiled to
# .bench-dist/bench/NAME.js) inside a loopback-only network namespace when root, so nothing it
# sends can leave the machine (and the ladder's black hole can be built).
#   bash bench/in-netns.sh run | fuzz-run | soak-run | ladder
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bench/in-netns.sh NAME (a file of bench/, without .ts)}
npx tsc -p tsconfig.json
npx tsc -p tsconfig.bench.json
if [ "$(id -u)" = 0 ] && [ -z "${DOHD_BENCH_IN_NS:-}" ] && unshare -n true 2>/dev/null; then
  exec unshare -n env DOHD_BENCH_IN_NS=1 bash -c "ip link set lo up && node .bench-dist/bench/$name.js"
fi
exec node ".bench-dist/bench/$name.js"
