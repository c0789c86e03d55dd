#!/bin/sh
# Every process of the container writes its metrics to PROMETHEUS_MULTIPROC_DIR; files left by a
# previous run would be summed in, so the directory starts empty.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
