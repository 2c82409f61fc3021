#!/usr/bin/env bash
# A job across test hosts on this machine (root): the coordinator on host 0, one worker on each of
# hosts 1..N, all talking over their own addresses (see hosts.sh).
#
#   cluster/netns/run.sh CONFIG WORKERS [RUN_DIR] [-- extra coordinator flags]
#
# Runs .build/release/proclip (or $PROCLIP). Logs go to RUN_DIR/coordinator.log and worker-K.log.
# The hosts are removed afterwards. Exit status: the coordinator's. The job's keys are made in
# RUN_DIR/keys (or taken from $PROCLIP_KEYS); PROCLIP_INSECURE=1 runs without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:?usage: run.sh CONFIG WORKERS [RUN_DIR] [-- flags]}
workers=${2:?usage: run.sh CONFIG WORKERS [RUN_DIR] [-- flags]}
run_dir=${3:-runs/netns}
shift $(( $# >= 3 ? 3 : $# ))
[ "${1:-}" = "--" ] && shift
proclip=${PROCLIP:-.build/release/proclip}
hosts=cluster/netns/hosts.sh
mkdir -p "$run_dir"
"$hosts" up $((workers + 1))
trap '"$hosts" down' EXIT
coordinator="tcp://$("$hosts" addr 0):29500"
if [ "${PROCLIP_INSECURE:-0}" = 1 ]; then
    key_flag=(--insecure)
else
    keys=${PROCLIP_KEYS:-$run_dir/keys}
    [ -f "$keys/coordinator.key" ] || "$proclip" keys new "$keys" >/dev/null
    key_flag=(--keys "$keys")
fi
"$hosts" exec 0 "$proclip" coordinator --config "$config" --listen "$coordinator" --workers "$workers" \
    --run-dir "$run_dir" --overwrite "${key_flag[@]}" "$@" >"$run_dir/coordinator.log" 2>&1 &
cpid=$!
pids=()
for ((k = 1; k <= workers; k++)); do
    "$hosts" exec "$k" "$proclip" worker --coordinator "$coordinator" "${key_flag[@]}" >"$run_dir/worker-$k.log" 2>&1 &
    pids+=($!)
done
status=0
wait "$cpid" || status=$?
for p in "${pids[@]}"; do wait "$p" || true; done
echo "run.sh: coordinator exited with $status; run directory $run_dir" >&2
exit "$status"
