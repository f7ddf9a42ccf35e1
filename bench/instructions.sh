#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: repeatable on a noisy
# shared machine where req/s moves by ±5% between rounds. Kernel work (the send/recv syscalls)
# is not counted; it is the same for every target (one recv and one send per request).
#
#   bench/instructions.sh            # DURATION=8 seconds of wrk -c10 per target
#   CONNS=1 bench/instructions.sh    # one connection: every request pays a full wake-up, and the
#                                    # count no longer moves with how requests batch (±20, not ±100)
#
# Targets: httpq embedded (examples/hello), hyper, and daemon mode (httpqd and the hello app,
# each process counted on its own); then one axum app (the `axum` example's `Router`, `GET /`)
# embedded in httpq and on hyper (`hyper-hello --axum`), where the handler does what real apps
# do around a request; then HTTP/2 (h2c) embedded, 20,000 requests over 10 connections and
# over one, whose ratio says whether a connection's age costs anything.
#
# Saves bench/results/<date>-<commit>-instructions.md and latest-instructions.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$BENCH_DIR/work"
DURATION=${DURATION:-8}
CONNS=${CONNS:-10}
mkdir -p "$WORK" "$BENCH_DIR/results"

for tool in valgrind wrk curl h2load; do
    package=$tool
    [[ $tool == h2load ]] && package=nghttp2-client
    command -v "$tool" >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$package" >/dev/null; }
    }
done
(cd "$ROOT" && cargo build --release -p httpq-bench --bin hyper-hello -p httpq-examples --example hello --example axum -p httpqd --bin httpqd >&2)

# measure NAME PORT CMD...: prints "requests instructions"
measure() {
    local name=$1 port=$2
    shift 2
    local out="$WORK/callgrind.$name.out"
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
    local requests
    requests=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    kill -INT "$pid" 2>/dev/null || true
    sleep 1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local instructions
    instructions=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "$requests $instructions"
}

printf 'Hello from httpq! prefix=http://127.0.0.1:18191/ pid=1\n' > "$WORK/ibody.txt"
read -r hq_req hq_ins < <(HTTPQ_URLS=http://127.0.0.1:18191/ RUST_LOG=warn measure httpq 18191 "$TARGET_DIR/release/examples/hello")
read -r hy_req hy_ins < <(measure hyper 18192 "$TARGET_DIR/release/hyper-hello" --addr 127.0.0.1:18192 --body-file "$WORK/ibody.txt")

# Daemon mode: httpqd and the hello app each under callgrind, the same wrk run counted in both.
measure_daemon() { # PORT: prints "requests httpqd-instructions app-instructions"
    local port=$1 dir="$WORK/idaemon"
    rm -rf "$dir" && mkdir -p "$dir" && chmod 755 "$dir"
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.httpqd" "$TARGET_DIR/release/httpqd" \
        --state-dir "$dir/state" --socket "$dir/httpq.sock" >"$dir/httpqd.log" 2>&1 &
    local qpid=$!
    for _ in $(seq 1 150); do [[ -S $dir/httpq.sock ]] && break; sleep 0.2; done
    HTTPQ_SOCKET="$dir/httpq.sock" HTTPQ_URLS="http://127.0.0.1:$port/" RUST_LOG=warn \
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.app" "$TARGET_DIR/release/examples/hello" >"$dir/app.log" 2>&1 &
    local apid=$!
    for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
    local requests
    requests=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    for pid in $apid $qpid; do
        kill -INT "$pid" 2>/dev/null || true
        sleep 1
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local total
    total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
    echo "$requests $(total "$dir/cg.httpqd") $(total "$dir/cg.app")"
}
read -r d_req d_lis d_app < <(measure_daemon 18193)

# The same axum Router on both servers.
read -r ax_req ax_ins < <(HTTPQ_URLS=http://127.0.0.1:18196/ RUST_LOG=warn measure httpq_axum 18196 "$TARGET_DIR/release/examples/axum")
read -r hx_req hx_ins < <(measure hyper_axum 18197 "$TARGET_DIR/release/hyper-hello" --addr 127.0.0.1:18197 --axum)

# HTTP/2 (h2c, embedded hello): 20,000 requests over 10 connections, then over one. A
# connection's age must not change what a request costs (a per-stream table that grew with it
# once made the one-connection run cost 2.4 times as much).
measure_h2() { # PORT CONNECTIONS: prints "requests instructions"
    local port=$1 conns=$2 out="$WORK/callgrind.h2.out"
    rm -f "$out"
    HTTPQ_URLS="http://127.0.0.1:$port/" RUST_LOG=warn valgrind --tool=callgrind \
        --callgrind-out-file="$out" "$TARGET_DIR/release/examples/hello" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
    local requests
    requests=$(h2load -c "$conns" -m 10 -n 20000 "http://127.0.0.1:$port/" 2>/dev/null | awk '/^requests:/ {print $8}')
    kill -INT "$pid" 2>/dev/null || true
    sleep 1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$requests $(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
}
read -r h2m_req h2m_ins < <(measure_h2 18194 10)
read -r h2o_req h2o_ins < <(measure_h2 18195 1)

commit=$(git -C "$ROOT" rev-parse --short HEAD)
[[ -z $(git -C "$ROOT" status --porcelain -- . ':!bench/results') ]] || commit="$commit-dirty"
report=$(python3 - "$hq_req" "$hq_ins" "$hy_req" "$hy_ins" "$commit" "$DURATION" "$d_req" "$d_lis" "$d_app" "$CONNS" "$h2m_req" "$h2m_ins" "$h2o_req" "$h2o_ins" "$ax_req" "$ax_ins" "$hx_req" "$hx_ins" <<'PY'
import sys, datetime, platform
hq_req, hq_ins, hy_req, hy_ins = map(int, sys.argv[1:5])
commit, duration = sys.argv[5], sys.argv[6]
d_req, d_lis, d_app = map(int, sys.argv[7:10])
conns = sys.argv[10]
h2m_req, h2m_ins, h2o_req, h2o_ins = map(int, sys.argv[11:15])
ax_req, ax_ins, hx_req, hx_ins = map(int, sys.argv[15:19])
hq, hy = hq_ins / hq_req, hy_ins / hy_req
print(f"# httpq instructions per request, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC\n")
print(f"- commit: {commit}; kernel {platform.release()}")
print(f"- command: `CONNS={conns} bench/instructions.sh` (callgrind, wrk -t1 -c{conns} -d{duration}s, user-space instructions of the whole server process divided by requests served)\n")
print("| target | requests | instructions / request | ratio to hyper |")
print("|---|---:|---:|---:|")
print(f"| httpq embedded (examples/hello) | {hq_req} | {hq:.0f} | {hq / hy:.2f} |")
print(f"| hyper (bench/hyper-hello) | {hy_req} | {hy:.0f} | 1.00 |")
print(f"| httpq daemon: httpqd | {d_req} | {d_lis / d_req:.0f} | {d_lis / d_req / hy:.2f} |")
print(f"| httpq daemon: the hello app | {d_req} | {d_app / d_req:.0f} | {d_app / d_req / hy:.2f} |")
print(f"| httpq daemon: both processes | {d_req} | {(d_lis + d_app) / d_req:.0f} | {(d_lis + d_app) / d_req / hy:.2f} |")
ax, hx = ax_ins / ax_req, hx_ins / hx_req
print("\nThe `axum` example's Router (`GET /`), the same app on both servers:\n")
print("| target | requests | instructions / request | ratio to hyper |")
print("|---|---:|---:|---:|")
print(f"| httpq embedded (examples/axum) | {ax_req} | {ax:.0f} | {ax / hx:.2f} |")
print(f"| hyper (bench/hyper-hello --axum) | {hx_req} | {hx:.0f} | 1.00 |")
h2m, h2o = h2m_ins / h2m_req, h2o_ins / h2o_req
print("\nHTTP/2 h2c, embedded hello, `h2load -m 10 -n 20000`: a long-lived connection must cost what short ones do.\n")
print("| connections | requests | instructions / request | ratio to 10 connections |")
print("|---:|---:|---:|---:|")
print(f"| 10 | {h2m_req} | {h2m:.0f} | 1.00 |")
print(f"| 1 | {h2o_req} | {h2o:.0f} | {h2o / h2m:.2f} |")
PY
)
echo "$report"
suffix=""
[[ $CONNS == 10 ]] || suffix="-c$CONNS"
file="$BENCH_DIR/results/$(date -u +%F)-$commit-instructions$suffix.md"
echo "$report" > "$file"
cp "$file" "$BENCH_DIR/results/latest-instructions.md"
echo "==> saved $file" >&2
