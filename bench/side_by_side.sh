#!/usr/bin/env bash
# bench/gateway.py on an older commit and on HEAD, interleaved (old, new, old, new, ...), in one
# session: the box is shared and its speed drifts, so figures are compared pair by pair.
#
#   bench/side_by_side.sh 9147004 [ROUNDS] [-- bench args]   # default: 2 rounds, --quick --servers ""
#   BENCH=chat_cpu.py bench/side_by_side.sh b36d08a 2 -- --runs 40   # another of these bench files
#
# Each commit is checked out as a git worktree under /tmp (its protos generated) and runs this
# checkout's bench files (gateway.py, chat_cpu.py, benchkit.py, flame.py) against its own sources: the
# services the bench starts inherit PYTHONPATH, so they run the worktree's code from this
# checkout's .venv (an older commit must still import with today's dependencies). Logs and the
# JSON lines go to /tmp/loom-side-by-side/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: bench/side_by_side.sh OLD_COMMIT [ROUNDS] [-- bench args]}
shift
rounds=2
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi
args=("$@")
bench=${BENCH:-gateway.py}
[ ${#args[@]} -eq 0 ] && [ "$bench" = gateway.py ] && args=(--quick --servers "")
out=/tmp/loom-side-by-side
mkdir -p "$out"

worktree() {  # worktree COMMIT -> its path, created (or moved) there, protos generated, bench copied
  local commit path
  commit=$(git -C "$here" rev-parse --short "$1")
  path=/tmp/loom-wt-$commit
  [ -d "$path" ] || git -C "$here" worktree add --detach "$path" "$commit" >/dev/null 2>&1
  PY="$here/.venv/bin/python" bash "$path/scripts/gen_protos.sh" >/dev/null
  cp "$here"/bench/{gateway.py,benchkit.py,flame.py,chat_cpu.py} "$path/bench/"
  echo "$path"
}

old_wt=$(worktree "$old")
new_wt=$(worktree HEAD)
for i in $(seq 1 "$rounds"); do
  for wt in "$old_wt" "$new_wt"; do
    name=$(basename "$wt")
    log="$out/$name-${bench%.py}-$i.log"
    echo "== $name round $i $(date -u +%T) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd "$wt" && PYTHONPATH=$(ls -d "$wt"/libs/*/src "$wt"/services/*/src | tr '\n' ':') \
      "$here/.venv/bin/python" "bench/$bench" "${args[@]}") >"$log" 2>&1 || echo "   failed: see $log"
    tail -1 "$log"
  done
done
