#!/usr/bin/env bash
# Runs every benchmark once at full size, one after the other, and tees the figures to a file.
# Each benchmark uses its own database (bench_notify) and Redis db 9; see bench/harness.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
out="${BENCH_OUT:-bench/results-$(date -u +%Y%m%dT%H%M%SZ).txt}"
{
    python -m bench.api_latency --rate 100 --seconds 30
    python -m bench.broadcast --recipients 100000 --channels inapp --deliver
    python -m bench.urgent_latency --backlog 100000 --urgent 20
    python -m bench.throughput --notifications "${BENCH_THROUGHPUT_N:-10000}" --runs "${BENCH_THROUGHPUT_RUNS:-3}" \
        --channels inapp,email,webhook
    python -m bench.throughput --notifications 100000 --runs 1 --channels inapp
    python -m bench.api_throughput --notifications 10000
    python -m bench.purge --notifications 100000
    python -m bench.roundtrips
    python -m bench.compiled_queries
    python -m bench.footprint
} 2>&1 | tee "$out"
echo "figures written to $out"
