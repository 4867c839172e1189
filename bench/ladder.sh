#!/usr/bin/env bash
# The ladder benchmark (bench/ladder.ts): inside a loopback-only network namespace when root,
# so the black hole can be built and nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
npx tsc -p tsconfig.bench.json
if [ "$(id -u)" = 0 ] && [ -z "${DOHD_BENCH_IN_NS:-}" ] && unshare -n true 2>/dev/null; then
  exec unshare -n env DOHD_BENCH_IN_NS=1 bash -c 'ip link set lo up && node .bench-dist/bench/ladder.js'
fi
exec node .bench-dist/bench/ladder.js
