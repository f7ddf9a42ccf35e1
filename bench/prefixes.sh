#!/usr/bin/env bash
# Routing and queue cost with many registrations: HTTP/1.1 req/s to one prefix when it is the
# only one, and when 1,000 are registered: in embedded mode (one process, 1,000 prefixes) and
# in daemon mode (httpqd with 100 hello processes of 10 prefixes each). The ratio should stay
# near 1.0. Also how long registering takes: from the start of the process(es) until the last
# prefix answers, for 1,000 and 4,000 prefixes in one process and for 1,000 through httpqd,
# with the serving process's CPU time. Each registration still compares the prefix with the
# registered ones, so 4,000 take ~5 times what 1,000 do, but no longer re-does the work of
# every earlier one (before fc365b3: 1,000 took 0.6 s, 3,000 took 7 s).
#
#   bench/prefixes.sh            # DURATION=5 ROUNDS=3
#
# Writes bench/results/<date>-<commit>-prefixes.md and bench/results/latest-prefixes.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK="$BENCH_DIR/work/prefixes"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PROCS=100
PER_PROC=10
mkdir -p "$WORK" "$BENCH_DIR/results"
say() { printf '==> %s\n' "$*" >&2; }
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }

say "building release binaries"
(cd "$ROOT" && cargo build --release -p httpq-examples --example hello -p httpqd --bin httpqd >&2)
HELLO="$TARGET_DIR/release/examples/hello"

wait_answers() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "bench/prefixes.sh: $1 does not answer" >&2
    exit 1
}

now() { date +%s.%N; }
# ready_after URL START PID: waits (10 ms steps) until URL answers 200, then prints the seconds
# since START and PID's CPU seconds (user + system).
ready_after() {
    local url=$1 start=$2 pid=$3
    for _ in $(seq 1 6000); do
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$(now)"
            awk -v hz="$(getconf CLK_TCK)" '{printf " %.2f\n", ($14 + $15) / hz}' "/proc/$pid/stat"
            return 0
        fi
        sleep 0.01
    done
    echo "bench/prefixes.sh: $url does not answer" >&2
    exit 1
}

# rps URL: the median req/s of ROUNDS wrk runs (after a 1 s warm-up).
rps() {
    wrk -t1 -c50 -d1s "$1" >/dev/null
    local r=()
    for _ in $(seq 1 "$ROUNDS"); do
        r+=("$(wrk -t1 -c50 -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}')")
    done
    printf '%s\n' "${r[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# prefixes PORT FIRST COUNT: COUNT prefixes /pFIRST/ ... on PORT, separated by ';'.
prefixes() {
    local port=$1 first=$2 count=$3 out="" i
    for ((i = first; i < first + count; i++)); do out+="http://127.0.0.1:$port/p$i/;"; done
    echo "${out%;}"
}

declare -A RPS=()

say "embedded: 1 prefix"
HTTPQ_URLS=$(prefixes 18801 500 1) RUST_LOG=warn "$HELLO" >/dev/null 2>&1 &
P=$!
wait_answers http://127.0.0.1:18801/p500/
RPS[embedded_1]=$(rps http://127.0.0.1:18801/p500/)
kill "$P"; wait "$P" 2>/dev/null || true

declare -A REG=()
say "embedded: 1,000 prefixes"
T0=$(now)
HTTPQ_URLS=$(prefixes 18801 0 $((PROCS * PER_PROC))) RUST_LOG=warn "$HELLO" >/dev/null 2>&1 &
P=$!
REG[embedded_1000]=$(ready_after "http://127.0.0.1:18801/p$((PROCS * PER_PROC - 1))/" "$T0" "$P" | paste -sd' ')
RPS[embedded_1000]=$(rps http://127.0.0.1:18801/p500/)
kill "$P"; wait "$P" 2>/dev/null || true

# 4,000: as many as fit in HTTPQ_URLS (an environment variable holds at most 128 KiB).
say "embedded: registering 4,000 prefixes"
T0=$(now)
HTTPQ_URLS=$(prefixes 18801 0 4000) RUST_LOG=warn "$HELLO" >/dev/null 2>&1 &
P=$!
REG[embedded_4000]=$(ready_after "http://127.0.0.1:18801/p3999/" "$T0" "$P" | paste -sd' ')
kill "$P"; wait "$P" 2>/dev/null || true

start_httpqd() {
    rm -rf "$WORK/daemon" && mkdir -p "$WORK/daemon" && chmod 755 "$WORK/daemon"
    "$TARGET_DIR/release/httpqd" --state-dir "$WORK/daemon/state" --socket "$WORK/daemon/httpq.sock" \
        --max-prefixes-per-user 100000 --max-queues-per-user 100000 --max-connections-per-user 100000 \
        >"$WORK/httpqd.log" 2>&1 &
    HTTPQD=$!
    for _ in $(seq 1 100); do [[ -S $WORK/daemon/httpq.sock ]] && break; sleep 0.1; done
}

say "daemon: 1 process, 1 prefix"
start_httpqd
HTTPQ_SOCKET="$WORK/daemon/httpq.sock" HTTPQ_URLS=$(prefixes 18802 500 1) RUST_LOG=warn "$HELLO" >/dev/null 2>&1 &
wait_answers http://127.0.0.1:18802/p500/
RPS[daemon_1]=$(rps http://127.0.0.1:18802/p500/)
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true

say "daemon: $PROCS processes, $((PROCS * PER_PROC)) prefixes"
start_httpqd
T0=$(now)
for ((p = 0; p < PROCS; p++)); do
    HTTPQ_SOCKET="$WORK/daemon/httpq.sock" HTTPQ_URLS=$(prefixes 18802 $((p * PER_PROC)) "$PER_PROC") RUST_LOG=warn \
        "$HELLO" >/dev/null 2>&1 &
done
REG[daemon_1000]=$(ready_after "http://127.0.0.1:18802/p$((PROCS * PER_PROC - 1))/" "$T0" "$HTTPQD" | paste -sd' ')
wait_answers http://127.0.0.1:18802/p0/
RPS[daemon_1000]=$(rps http://127.0.0.1:18802/p500/)
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true

commit=$(git -C "$ROOT" rev-parse --short HEAD)
[[ -z $(git -C "$ROOT" status --porcelain -- . ':!bench/results') ]] || commit="$commit-dirty"
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
{
    echo "# Many registrations: routing and queue cost, $(date -u '+%Y-%m-%d %H:%M') UTC"
    echo
    echo "- machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
    echo "- commit: $commit"
    echo "- command: \`DURATION=$DURATION ROUNDS=$ROUNDS bench/prefixes.sh\`: \`wrk -t1 -c50 -d${DURATION}s\` to /p500/, median of $ROUNDS rounds; wrk and the servers share the CPUs"
    echo
    echo "| mode | 1 prefix req/s | $((PROCS * PER_PROC)) prefixes req/s | ratio |"
    echo "|---|---:|---:|---:|"
    echo "| embedded (one hello process) | ${RPS[embedded_1]} | ${RPS[embedded_1000]} | $(ratio "${RPS[embedded_1000]}" "${RPS[embedded_1]}") |"
    echo "| daemon (httpqd; 1 hello, then $PROCS hellos of $PER_PROC prefixes) | ${RPS[daemon_1]} | ${RPS[daemon_1000]} | $(ratio "${RPS[daemon_1000]}" "${RPS[daemon_1]}") |"
    echo
    echo "Registering: from the start of the process(es) until the last prefix answers, and the CPU time of the process that holds the routes (hello embedded, httpqd in daemon mode) by then."
    echo
    echo "| registrations | seconds | CPU seconds |"
    echo "|---|---:|---:|"
    read -r secs cpu <<<"${REG[embedded_1000]}"
    echo "| embedded, 1,000 prefixes in one process | $secs | $cpu |"
    read -r secs cpu <<<"${REG[embedded_4000]}"
    echo "| embedded, 4,000 prefixes in one process | $secs | $cpu |"
    read -r secs cpu <<<"${REG[daemon_1000]}"
    echo "| daemon, $PROCS processes of $PER_PROC prefixes (httpqd's CPU) | $secs | $cpu |"
} >"$WORK/report.md"
cat "$WORK/report.md"
file="$BENCH_DIR/results/$(date -u +%F)-$commit-prefixes.md"
cp "$WORK/report.md" "$file"
cp "$file" "$BENCH_DIR/results/latest-prefixes.md"
say "saved $file"
