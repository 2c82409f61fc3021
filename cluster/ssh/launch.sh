#!/usr/bin/env bash
# A proclip job on hosts reachable by SSH: the coordinator here, workers on the hosts listed in a
# hostfile (one per line, "host [slots]"; `#` starts a comment), `slots` workers on each.
#
#   cluster/ssh/launch.sh HOSTFILE CONFIG [RUN_DIR]
#
# Every host needs the proclip binary at $PROCLIP (default: this checkout's .build/release/proclip,
# same path remotely) and the dataset at the config's data.path or $PROCLIP_DATA. The coordinator
# listens on this host's address toward the first worker host, port $PROCLIP_PORT (default 29500).
#
# Security: the job's keys are made in RUN_DIR/keys here (or taken from $PROCLIP_KEYS); each worker
# host receives worker.key only, over SSH, into ~/.proclip/keys-<run name>/ (mode 0600).
# PROCLIP_INSECURE=1 runs without keys.
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
tag=$(basename "$run_dir")
if [ "${PROCLIP_INSECURE:-0}" = 1 ]; then
    key_flag=(--insecure)
    remote_key_flag="--insecure"
else
    keys=${PROCLIP_KEYS:-$run_dir/keys}
    [ -f "$keys/coordinator.key" ] || "$proclip" keys new "$keys" >/dev/null
    key_flag=(--keys "$keys")
    remote_key_flag="--keys .proclip/keys-$tag/worker.key"
    for e in "${entries[@]}"; do
        host=$(echo "$e" | awk '{print $1}')
        ssh -o BatchMode=yes "$host" "umask 077 && mkdir -p .proclip/keys-$tag && cat > .proclip/keys-$tag/worker.key" \
            <"$keys/worker.key"
    done
fi
"$proclip" coordinator --config "$config" --listen "tcp://$addr:$port" --workers "$total" --run-dir "$run_dir" \
    "${data_flag[@]}" "${key_flag[@]}" &
coordinator=$!
pids=()
for e in "${entries[@]}"; do
    host=$(echo "$e" | awk '{print $1}')
    slots=$(echo "$e" | awk '{print ($2 ? $2 : 1)}')
    for ((s = 0; s < slots; s++)); do
        ssh -o BatchMode=yes "$host" "$proclip" worker --coordinator "tcp://$addr:$port" "${data_flag[@]}" $remote_key_flag \
            >"$run_dir/worker-$host-$s.log" 2>&1 &
        pids+=($!)
    done
done
trap 'kill -TERM "$coordinator" 2>/dev/null || true' INT TERM
status=0
wait "$coordinator" || status=$?
for p in "${pids[@]}"; do wait "$p" || true; done
exit "$status"
