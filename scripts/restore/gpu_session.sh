#!/usr/bin/env bash
# One restoration run (scripts/gpu_restore.sh) that spans several GPU-machine calls without being
# stopped at a call's 10-minute limit: `start` launches it in its own process session (setsid: the
# device tool keeps such a process running after the call returns, while the machine stays warm,
# i.e. while the next call comes within its idle time), and each call then waits on it.
#   gpu_session.sh start [RECIPES.tsv]   start the run once (a second start only waits), then wait
#   gpu_session.sh wait                  wait on the running one
# A call waits until the run ends or WAIT_S (default 560) pass, printing progress every minute,
# then copies what exists to $OUT: restoration_table.md, results.json, logs.tgz, run.log and the
# teacher samples the run has packed so far (samples-<kind>.tar.xz, see gpu_restore.sh). The run itself
# has no deadline of its own (DEADLINE_S defaults to 7200 here); gpu_restore.sh's environment
# (SAMPLE_TOKENS, SUITE_HUMANEVAL, ...) is passed through from the `start` call.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work=/tmp/linearard-restore
session="$work/session"; mkdir -p "$session"
verb="${1:-wait}"; shift || true
call_out="${OUT:-}"  # this call's $OUT (the run's own OUT is the session's)
if [ "$verb" = start ] && [ ! -f "$session/pid" ]; then
  export DEADLINE_S="${DEADLINE_S:-7200}" OUT="$session/final"
  mkdir -p "$OUT"
  setsid nohup bash -c 'bash scripts/gpu_restore.sh "$@"; echo $? > '"$session/rc" _ "$@" \
    > "$session/run.log" 2>&1 < /dev/null &
  echo $! > "$session/pid"
  echo "gpu_session: started gpu_restore.sh (pid $(cat "$session/pid")) in $root"
elif [ "$verb" != start ] && [ "$verb" != wait ]; then
  echo "gpu_session: unknown verb '$verb' (start | wait)" >&2; exit 2
fi
[ -f "$session/pid" ] || { echo "gpu_session: no run started on this machine (a fresh machine: start again)"; exit 3; }
progress() {
  echo "--- $(date +%T) run.log:"; tail -n 4 "$session/run.log"
  for log in "$work"/out/train_*.log "$work"/out/sample*.log; do
    [ -f "$log" ] && echo "$(basename "$log"): $(tail -c 600 "$log" | tr '\r' '\n' | grep -v '^$' | tail -1 | cut -c1-160)"
  done
}
t0=$SECONDS
while [ ! -f "$session/rc" ] && [ $(( SECONDS - t0 )) -lt "${WAIT_S:-560}" ]; do
  sleep 5
  [ $(( (SECONDS - t0) % 60 )) -lt 5 ] && progress
done
progress
if [ -n "$call_out" ] && [ -d "$call_out" ]; then
  python3 scripts/restore/summarize.py "$work/out" > "$call_out/restoration_table.md" 2>/dev/null
  cp "$session/final/results.json" "$call_out/" 2>/dev/null
  (cd "$work/out" && tar czf "$call_out/logs.tgz" .) 2>/dev/null
  cp "$session/run.log" "$call_out/run.log"
  # The teacher samples this run made (gpu_restore.sh packs each kind once it is sampled), for
  # .restore/samples/ of a later session: 4 files above + these stay within a call's 8.
  cp "$work"/keep/samples-*.tar.xz* "$call_out/" 2>/dev/null
fi
if [ -f "$session/rc" ]; then
  echo "gpu_session: the run ended (rc $(cat "$session/rc"))"; cat "$call_out/restoration_table.md" 2>/dev/null
  exit "$(cat "$session/rc")"
fi
echo "gpu_session: still running after ${WAIT_S:-560} s: call 'gpu_session.sh wait' again within the machine's idle time"
