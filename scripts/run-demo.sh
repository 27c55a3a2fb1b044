#!/usr/bin/env bash
# The main job with embedded defaults: install what is needed, build optimized, run the index
# benchmark (the delta index at the volume-index shape: 64M entries, 256 per list, mean delta
# 4096, 10-bit payload; and the chapter-index shape). Extra arguments go to the benchmark, e.g.
# --entries=16000000 on a machine with less memory.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
ninja -C build/release >/dev/null
exec build/release/bench/delta-index-bench "$@"
