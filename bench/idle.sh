#!/usr/bin/env bash
# Memory per idle keep-alive connection: N clients (default 10,000) each make one request and
# stay connected; the serving process's RSS before and after, divided by N. Targets: httpq
# embedded (examples/hello) and httpq daemon (httpqd's RSS: it holds the connections; hello
# behind it), each over HTTP/1.1 and HTTP/2 (h2c); hyper (bench/hyper-hello) over HTTP/1.1, and
# over h2c to show what the h2 crate itself holds; nginx (all its processes). Each measure runs
# in fresh server processes.
#
#   bench/idle.sh              # N=10000
#   N=2000 bench/idle.sh       # quicker
#
# Writes bench/results/<date>-<commit>-idle.md and bench/results/latest-idle.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK="$BENCH_DIR/work/idle"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
N=${N:-10000}
GOAL_KIB=2
mkdir -p "$WORK" "$BENCH_DIR/results"
say() { printf '==> %s\n' "$*" >&2; }
# Whatever happens, the servers started here stop with the script.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/idle.sh: $tool is missing" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { apt-get install -y nginx >/dev/null || { apt-get update >/dev/null && apt-get install -y nginx >/dev/null; }; }
python3 -c "import h2" 2>/dev/null || python3 -m pip install -q h2
ulimit -n "$(ulimit -Hn)"
((N + 100 <= $(ulimit -n))) || { echo "bench/idle.sh: N=$N needs more descriptors than ulimit -Hn ($(ulimit -Hn))" >&2; exit 1; }

say "building release binaries"
(cd "$ROOT" && cargo build --release -p httpq-bench --bin hyper-hello -p httpq-examples --example hello -p httpqd --bin httpqd >&2)

rss_kib() { # PID...: the summed VmRSS of these processes
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

wait_answers() {
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "bench/idle.sh: $1 does not answer" >&2
    exit 1
}

declare -A PER_CONN=() LABEL=()
ORDER=()

# measure NAME LABEL PORT PROTO PIDS...: opens N idle connections to PORT, records KiB each.
measure() {
    local name=$1 label=$2 port=$3 proto=$4
    shift 4
    sleep 0.5
    local before after
    before=$(rss_kib "$@")
    coproc CLIENT { python3 "$BENCH_DIR/tools/idle_clients.py" 127.0.0.1 "$port" "$N" "$proto" 2>&1; }
    local line
    read -r line <&"${CLIENT[0]}" || true
    [[ $line == "ready $N" ]] || { echo "bench/idle.sh: $name: clients said: $line" >&2; exit 1; }
    # Idle connections give their buffers back after a second of silence.
    sleep 2
    after=$(rss_kib "$@")
    exec {CLIENT[1]}>&-
    wait "$CLIENT_PID" 2>/dev/null || true
    PER_CONN[$name]=$(python3 -c "print(f'{($after - $before) / $N:.2f}')")
    LABEL[$name]=$label
    ORDER+=("$name")
    say "$label: RSS $before KiB -> $after KiB, ${PER_CONN[$name]} KiB per connection"
}

stop() { kill "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }

printf 'Hello from httpq! idle benchmark body\n' > "$WORK/body.txt"

say "httpq embedded"
HTTPQ_URLS=http://127.0.0.1:18601/ RUST_LOG=warn "$TARGET_DIR/release/examples/hello" > "$WORK/hello.log" 2>&1 &
HELLO=$!
wait_answers http://127.0.0.1:18601/
measure embedded "httpq embedded, HTTP/1.1 (examples/hello)" 18601 h1 "$HELLO"
stop "$HELLO"
# A fresh process: memory freed by the first clients would hide the second's.
HTTPQ_URLS=http://127.0.0.1:18601/ RUST_LOG=warn "$TARGET_DIR/release/examples/hello" > "$WORK/hello.log" 2>&1 &
HELLO=$!
wait_answers http://127.0.0.1:18601/
measure embedded_h2 "httpq embedded, HTTP/2 h2c (examples/hello)" 18601 h2 "$HELLO"
stop "$HELLO"

say "httpq daemon"
start_daemon() { # httpqd with the hello app behind it on port 18602: sets HTTPQD and APP
    rm -rf "$WORK/daemon" && mkdir -p "$WORK/daemon" && chmod 755 "$WORK/daemon"
    "$TARGET_DIR/release/httpqd" --state-dir "$WORK/daemon/state" --socket "$WORK/daemon/httpq.sock" > "$WORK/httpqd.log" 2>&1 &
    HTTPQD=$!
    for _ in $(seq 1 100); do [[ -S $WORK/daemon/httpq.sock ]] && break; sleep 0.1; done
    HTTPQ_SOCKET="$WORK/daemon/httpq.sock" HTTPQ_URLS=http://127.0.0.1:18602/ RUST_LOG=warn "$TARGET_DIR/release/examples/hello" > "$WORK/app.log" 2>&1 &
    APP=$!
    wait_answers http://127.0.0.1:18602/
}
start_daemon
measure daemon "httpq daemon, HTTP/1.1 (httpqd's RSS)" 18602 h1 "$HTTPQD"
stop "$APP" "$HTTPQD"
# Fresh processes again: memory the HTTP/1.1 clients freed would hide what HTTP/2 takes.
start_daemon
measure daemon_h2 "httpq daemon, HTTP/2 h2c (httpqd's RSS)" 18602 h2 "$HTTPQD"
stop "$APP" "$HTTPQD"

say "hyper"
"$TARGET_DIR/release/hyper-hello" --addr 127.0.0.1:18603 --body-file "$WORK/body.txt" > "$WORK/hyper.log" 2>&1 &
HYPER=$!
wait_answers http://127.0.0.1:18603/
HYPER_VERSION=$(cd "$ROOT" && cargo tree -p httpq-bench -i hyper --depth 0 2>/dev/null | awk '{print $2}' | head -1 || true)
H2_VERSION=$(cd "$ROOT" && cargo tree -p httpq-bench -i h2 --depth 0 2>/dev/null | awk '{print $2}' | head -1 || true)
measure hyper "hyper $HYPER_VERSION (bench/hyper-hello)" 18603 h1 "$HYPER"
stop "$HYPER"
# hyper over HTTP/2 runs on the same h2 crate as httpq: what that crate holds per connection.
"$TARGET_DIR/release/hyper-hello" --addr 127.0.0.1:18603 --body-file "$WORK/body.txt" --h2c > "$WORK/hyper.log" 2>&1 &
HYPER=$!
for i in $(seq 1 100); do
    curl -fsS -o /dev/null --http2-prior-knowledge --max-time 1 http://127.0.0.1:18603/ 2>/dev/null && break
    ((i < 100)) || { echo "bench/idle.sh: hyper-hello --h2c does not answer over HTTP/2 (curl --http2-prior-knowledge)" >&2; exit 1; }
    sleep 0.1
done
measure hyper_h2 "hyper $HYPER_VERSION, HTTP/2 h2c (h2 $H2_VERSION, bench/hyper-hello --h2c)" 18603 h2 "$HYPER"
stop "$HYPER"

say "nginx"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 2;
worker_rlimit_nofile 30000;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:18604;
        location / { default_type text/plain; return 200 "Hello from httpq! idle benchmark body\n"; }
    }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -g 'daemon off;' > "$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
wait_answers http://127.0.0.1:18604/
measure nginx "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (master and workers)" 18604 h1 "$NGINX_PID" $(pgrep -P "$NGINX_PID")
stop "$NGINX_PID"

commit=$(git -C "$ROOT" rev-parse --short HEAD)
[[ -z $(git -C "$ROOT" status --porcelain -- . ':!bench/results') ]] || commit="$commit-dirty"
verdict() { python3 -c "print('met' if $1 <= $GOAL_KIB else 'NOT met')"; }
{
    echo "# Memory per idle keep-alive connection, $(date -u '+%Y-%m-%d %H:%M') UTC"
    echo
    echo "- machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
    echo "- commit: $commit"
    echo "- command: \`N=$N bench/idle.sh\`: $N clients (bench/tools/idle_clients.py) each make one request, read the whole answer and stay connected; 2 s later, (RSS after - RSS before) / $N of the process(es) holding the connections"
    echo
    echo "| target | KiB per idle connection | ratio to hyper |"
    echo "|---|---:|---:|"
    for t in "${ORDER[@]}"; do
        echo "| ${LABEL[$t]} | ${PER_CONN[$t]} | $(python3 -c "print(f'{${PER_CONN[$t]} / max(${PER_CONN[hyper]}, 0.01):.1f}')") |"
    done
    echo
    echo "Goal: at most $GOAL_KIB KiB per idle connection in embedded mode and in httpqd, HTTP/1.1 and HTTP/2."
    echo "- embedded HTTP/1.1: ${PER_CONN[embedded]} KiB, $(verdict "${PER_CONN[embedded]}")"
    echo "- embedded HTTP/2: ${PER_CONN[embedded_h2]} KiB, $(verdict "${PER_CONN[embedded_h2]}")"
    echo "- httpqd HTTP/1.1: ${PER_CONN[daemon]} KiB, $(verdict "${PER_CONN[daemon]}")"
    echo "- httpqd HTTP/2: ${PER_CONN[daemon_h2]} KiB, $(verdict "${PER_CONN[daemon_h2]}")"
    echo
    echo "HTTP/2 in httpq and in hyper runs on the h2 crate ($H2_VERSION), which holds a 16 KiB write buffer and tokio-util's 8 KiB read buffer for each connection's life: hyper's HTTP/2 holds ${PER_CONN[hyper_h2]} KiB per idle connection."
} > "$WORK/report.md"
cat "$WORK/report.md"
file="$BENCH_DIR/results/$(date -u +%F)-$commit-idle.md"
cp "$WORK/report.md" "$file"
cp "$file" "$BENCH_DIR/results/latest-idle.md"
say "saved $file"
