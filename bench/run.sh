#!/usr/bin/env bash
# Builds dohd and the benchmark, then runs it — inside a loopback-only network namespace
# when possible, so nothing it does can leave the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null || { echo "bench: dnsperf is missing (apt-get install dnsperf)" >&2; exit 1; }
npx tsc -p tsconfig.json
npx tsc -p tsconfig.bench.json
if [ "$(id -u)" = 0 ] && [ -z "${DOHD_BENCH_IN_NS:-}" ] && unshare -n true 2>/dev/null; then
  exec unshare -n env DOHD_BENCH_IN_NS=1 bash -c 'ip link set lo up && node .bench-dist/bench/run.js'
fi
exec node .bench-dist/bench/run.js
