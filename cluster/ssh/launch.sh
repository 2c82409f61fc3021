#!/usr/bin/env bash
# A proclip job on hosts reachable by SSH: the coordinator here, workers on the hosts listed in a
# hostfile (one per line, "host [slots]"; `#` starts a comment), `slots` workers on each.
#
#   cluster/ssh/launch.sh HOSTFILE CONFIG [RUN_DIR]
#
# Every host needs the proclip binary at $PROCLIP (default: this checkout's .build/release/proclip,
# same path remotely) and the dataset at the config's data.path or $PROCLIP_DATA. The coordinator
# listens on this host's address toward the first worker host, port $PROCLIP_PORT (default 29500).
set -euo pipefail
hostfile=${1:?usage: launch.sh HOSTFILE CONFIG [RUN_DIR]}
config=${2:?usage: launch.sh HOSTFILE CONFIG [RUN_DIR]}
run_dir=${3:-runs/$(basename "$config" .yaml)}
proclip=${PROCLIP:-$(cd "$(dirname "$0")/../.." && pwd)/.build/release/proclip}
port=${PROCLIP_PORT:-29500}
data_flag=()
[ -n "${PROCLIP_DATA:-}" ] && data_flag=(--data "$PROCLIP_DATA")

mapfile -t entries < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$hostfile")
[ ${#entries[@]} -gt 0 ] || { echo "launch.sh: $hostfile lists no hosts" >&2; exit 2; }
first=$(echo "${entries[0]}" | awk '{print $1}')
addr=$(ip route get "$(getent ahostsv4 "$first" | awk 'NR==1{print $1}')" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
total=0
for e in "${entries[@]}"; do total=$((total + $(echo "$e" | awk '{print ($2 ? $2 : 1)}'))); done

mkdir -p "$run_dir"
"$proclip" coordinator --config "$config" --listen "tcp://$addr:$port" --workers "$total" --run-dir "$run_dir" \
    "${data_flag[@]}" &
coordinator=$!
pids=()
for e in "${entries[@]}"; do
    host=$(echo "$e" | awk '{print $1}')
    slots=$(echo "$e" | awk '{print ($2 ? $2 : 1)}')
    for ((s = 0; s < slots; s++)); do
        ssh -o BatchMode=yes "$host" "$proclip" worker --coordinator "tcp://$addr:$port" "${data_flag[@]}" \
            >"$run_dir/worker-$host-$s.log" 2>&1 &
        pids+=($!)
    done
done
trap 'kill -TERM "$coordinator" 2>/dev/null || true' INT TERM
status=0
wait "$coordinator" || status=$?
for p in "${pids[@]}"; do wait "$p" || true; done
exit "$status"
