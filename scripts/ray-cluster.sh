# Sourced by scripts/test-ray.sh and scripts/bench/ray_scale.sh: a local Ray cluster on
# 127.0.0.1: a head and two workers, one CPU each (the head's runs Ray Data's read and write
# tasks while grader actors hold the workers').
#
#   start_ray_cluster VENV OBJECT_STORE_MB   # exports RAY_ADDRESS; sets an EXIT trap that stops it
#
# Each `ray start --block` stays in the foreground as the parent of its node's processes (GCS,
# raylet, agents, workers). `ray start --block` ignores SIGTERM, so the cluster is stopped by
# signalling every process of those trees, found from these process ids alone (never
# `ray stop`, which stops every Ray process of the user). Dashboard and usage stats off.

ray_pids=()
ray_run=""

ray_tree() {
    local child
    for child in $(pgrep -P "$1" || true); do ray_tree "$child"; done
    echo "$1"
}

stop_ray_cluster() {
    local pid proc procs=() i
    for pid in "${ray_pids[@]}"; do
        while read -r proc; do procs+=("$proc"); done < <(ray_tree "$pid")
    done
    if [ ${#procs[@]} -gt 0 ]; then
        kill -TERM "${procs[@]}" 2>/dev/null || true
        for i in $(seq 20); do
            ps -o pid= -p "$(IFS=,; echo "${procs[*]}")" >/dev/null || break
            sleep 0.5
        done
        kill -KILL "${procs[@]}" 2>/dev/null || true
    fi
    for pid in "${ray_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "$ray_run" ] && rm -rf "$ray_run"
    return 0
}

start_ray_cluster() {
    local venv=$1 store_mb=$2 port w ready=""
    ray_run=$(mktemp -d /tmp/arbiter-ray.XXXXXX)
    trap stop_ray_cluster EXIT
    trap 'exit 143' TERM INT
    port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export RAY_USAGE_STATS_ENABLED=0 RAY_ADDRESS="127.0.0.1:$port"
    local common=(--node-ip-address=127.0.0.1 --object-store-memory=$((store_mb * 1024 * 1024)) --block --disable-usage-stats)
    "$venv/bin/ray" start --head --port="$port" --num-cpus=1 --include-dashboard=false \
        --temp-dir="$ray_run/ray" "${common[@]}" >"$ray_run/head.log" 2>&1 &
    ray_pids+=($!)
    for _ in $(seq 60); do
        "$venv/bin/python" -c "import ray; ray.init(address='$RAY_ADDRESS', log_to_driver=False)" >/dev/null 2>&1 && break
        sleep 1
    done
    # One worker at a time: two raylets starting at once on one host time out.
    for w in 1 2; do
        "$venv/bin/ray" start --address="$RAY_ADDRESS" --num-cpus=1 "${common[@]}" >"$ray_run/worker-$w.log" 2>&1 &
        ray_pids+=($!)
        ready=""
        for _ in $(seq 120); do
            if RAY_WANT_NODES=$((w + 1)) "$venv/bin/python" - >/dev/null 2>&1 <<'PY'
import os, ray
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
assert sum(n["Alive"] for n in ray.nodes()) == int(os.environ["RAY_WANT_NODES"])
PY
            then
                ready=1
                break
            fi
            sleep 1
        done
        [ -n "$ready" ] || break
    done
    if [ -z "$ready" ]; then
        echo "ray-cluster: the cluster did not come up; logs:" >&2
        tail -n 20 "$ray_run"/*.log >&2
        return 1
    fi
}
