#!/usr/bin/env bash
# `npm run bench`: the benchmark (bench/run.ts), in a loopback-only network namespace when root.
set -euo pipefail
command -v dnsperf >/dev/null || { echo "bench: dnsperf is missing (apt-get install dnsperf)" >&2; exit 1; }
exec bash "$(dirname "$0")/in-netns.sh" run
