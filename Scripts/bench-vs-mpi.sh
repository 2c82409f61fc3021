#!/usr/bin/env bash
# Compares proclip's ring all-reduce with OpenMPI's MPI_Allreduce on this machine: the same
# world size, sizes and timing rule (Scripts/mpi_allreduce_bench.c mirrors
# `proclip bench collectives`), run back to back in rounds, so each figure has a reference
# measured in the same minute. Prints a Markdown table of medians over the rounds, with ratios.
#
#   Scripts/bench-vs-mpi.sh [--world W] [--sizes 4K,64K,1M,16M,64M] [--rounds N] [--raw DIR]
#                           [--idle-wait SECONDS]
#
# On a shared machine every run first waits (up to --idle-wait seconds, default 120) until the
# CPUs are at least 85% idle over one second, so that runs start on a quiet machine where one
# can be had; the report says how many runs had to start busy.
#
# References: OpenMPI over TCP (--mca btl self,tcp) and over shared memory (self,vader), both
# with the ob1 point-to-point layer so that the chosen transport is the one used. Ours: tcp
# loopback and ipc, with the point-to-point throughput of the same transport from the same run.
# Installs openmpi-bin and libopenmpi-dev when missing. PROCLIP_SCRATCH picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."

world=4
sizes=4K,64K,1M,16M,64M
rounds=3
raw=""
idle_wait=120
while (($#)); do
    case "$1" in
        --idle-wait) idle_wait=$2; shift 2 ;;
        --world) world=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --raw) raw=$2; shift 2 ;;
        *) echo "usage: $0 [--world W] [--sizes LIST] [--rounds N] [--raw DIR]" >&2; exit 2 ;;
    esac
done

need=()
for pkg in openmpi-bin libopenmpi-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "bench-vs-mpi: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpicc -O2 -o "$tmp/mpi_allreduce" Scripts/mpi_allreduce_bench.c

scratch=${PROCLIP_SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product proclip >&2
proclip="$scratch/release/proclip"

mpirun=(mpirun --oversubscribe -np "$world" --mca pml ob1 --mca btl_tcp_if_include lo)
[ "$(id -u)" -eq 0 ] && mpirun+=(--allow-run-as-root)
shm=vader
ompi_info --param btl vader 2>/dev/null | grep -q vader || shm=sm  # OpenMPI 5 renamed it

# Percent of CPU time idle over the next second, from /proc/stat.
idle_percent() {
    local a b
    read -r -a a < /proc/stat
    sleep 1
    read -r -a b < /proc/stat
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    echo $((100 * (b[4] + b[5] - a[4] - a[5]) / (total > 0 ? total : 1)))
}
busy=0
quiet() {
    local waited=0
    while ((waited < idle_wait)); do
        (($(idle_percent) >= 85)) && return 0
        waited=$((waited + 1))
    done
    busy=$((busy + 1))
}

for ((round = 1; round <= rounds; round++)); do
    echo "bench-vs-mpi: round $round of $rounds" >&2
    quiet; "${mpirun[@]}" --mca btl self,tcp "$tmp/mpi_allreduce" "$sizes" > "$tmp/mpi_tcp.$round"
    quiet; "${mpirun[@]}" --mca btl "self,$shm" "$tmp/mpi_allreduce" "$sizes" > "$tmp/mpi_shm.$round"
    quiet; "$proclip" bench collectives --world "$world" --sizes "$sizes" --transport tcp --json > "$tmp/ours_tcp.$round"
    quiet; "$proclip" bench collectives --world "$world" --sizes "$sizes" --transport ipc --json > "$tmp/ours_ipc.$round"
done
[ -n "$raw" ] && mkdir -p "$raw" && cp "$tmp"/*.[0-9]* "$raw"/

python3 - "$tmp" "$world" "$rounds" "$busy" <<'PY'
import json, statistics, sys
tmp, world, rounds, busy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
factor = 2 * (world - 1) / world if world > 1 else 1

def mpi(name, r):
    out = {}
    for line in open(f"{tmp}/{name}.{r}"):
        f = line.split()
        if f and f[0] == "result":
            assert f[3] == "0", f"MPI_Allreduce gave wrong sums: {line}"
            out[int(f[1])] = float(f[2])
    return out

def ours(name, r):
    out = {}
    for line in open(f"{tmp}/{name}.{r}"):
        o = json.loads(line)
        assert o["correct"], f"proclip gave wrong sums: {line}"
        out[o["bytes"]] = (o["seconds"], o["p2p_gbs"])
    return out

runs = [(mpi("mpi_tcp", r), mpi("mpi_shm", r), ours("ours_tcp", r), ours("ours_ipc", r)) for r in range(1, rounds + 1)]
med = statistics.median
def busbw(b, s): return b / s / 1e9 * factor
def size(b): return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1 << 10 else f"{b} B"
def t(s): return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"

print(f"all-reduce, {world} processes; medians of {rounds} interleaved rounds; busbw in GB/s (1e9 B/s); "
      f"{busy} of {4 * rounds} runs started on a busy machine")
print()
print("| size | MPI tcp | MPI tcp busbw | MPI shm busbw | ours tcp | ours tcp busbw | p2p tcp | ours ipc busbw | ours tcp ÷ MPI tcp | ours ipc ÷ ours tcp | ours ipc ÷ MPI shm |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b in sorted(runs[0][0]):
    mt = med(r[0][b] for r in runs)
    ms = med(r[1][b] for r in runs)
    ot = med(r[2][b][0] for r in runs)
    oi = med(r[3][b][0] for r in runs)
    p2p = med(r[2][b][1] for r in runs)
    # Ratios are per round (same minute), then the median: a speed-up above 1 is ours ahead.
    per_round = sorted(r[0][b] / r[2][b][0] for r in runs)
    vs_mpi = med(per_round)
    ipc_vs_tcp = med(r[2][b][0] / r[3][b][0] for r in runs)
    ipc_vs_shm = med(r[1][b] / r[3][b][0] for r in runs)
    print(f"| {size(b)} | {t(mt)} | {busbw(b, mt):.3f} | {busbw(b, ms):.3f} | {t(ot)} | {busbw(b, ot):.3f} | {p2p:.3f} | "
          f"{busbw(b, oi):.3f} | {vs_mpi:.2f}× ({per_round[0]:.2f}–{per_round[-1]:.2f}) | {ipc_vs_tcp:.2f}× | {ipc_vs_shm:.2f}× |")
print()
print("Ratios are speed-ups (time of the reference ÷ ours, per round, then the median; the range over rounds")
print("in brackets); at 4 KiB the inverse of the first ratio is our latency relative to MPI over TCP.")
PY
