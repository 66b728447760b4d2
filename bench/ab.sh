#!/usr/bin/env bash
# A/B: this tree's build (A, build/orrery) against another commit (B), the
# same loads in the same run, servers alternating, medians over rounds.
#
#   bench/ab.sh REV        REV defaults to HEAD~1
#
# B is built from a clean worktree of REV in build-ab/ (never in the source
# tree). Environment as for bench/run.sh; the defaults here are the loads an
# A/B of the server floor looks at (closed loop, flood 16 B, fan-out) and 3
# rounds. The table's A/B column is A's figure over B's (above 1: A does
# more per server CPU-second; for the latency figures, lower is better).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:-HEAD~1}
AB=$ROOT/build-ab
sha=$(git -C "$ROOT" rev-parse --verify "$REV^{commit}")
rm -rf "$AB/src"
mkdir -p "$AB"
git -C "$ROOT" worktree prune
git -C "$ROOT" worktree add --detach -f "$AB/src" "$sha" >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$AB/src" >/dev/null 2>&1 || true' EXIT
cmake -S "$AB/src" -B "$AB/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORR_TESTS=OFF >/dev/null
cmake --build "$AB/build" -j "$(nproc)" --target orrery >/dev/null
echo "bench/ab.sh: A = this tree ($(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ', modified')), B = ${sha:0:7} ($REV)" >&2
BENCH_ORRERY_B=$AB/build/orrery \
    BENCH_SERVERS=${BENCH_SERVERS:-orrery orreryB} \
    BENCH_LOADS=${BENCH_LOADS:-closed100 closed1000 flood16 fanout} \
    BENCH_ROUNDS=${BENCH_ROUNDS:-3} \
    "$ROOT/bench/run.sh"
