#!/usr/bin/env bash
# httpq HTTP/1.1 benchmark: httpq embedded (examples/hello) vs in-process hyper
# (bench/src/hyper_hello.rs) vs nginx, all on loopback, same response body,
# measured with wrk. See bench/README.md.
#
#   bench/run.sh                          # defaults: DURATION=5 ROUNDS=3
#   DURATION=10 ROUNDS=5 bench/run.sh
#   SKIP_HTTPQ=1 bench/run.sh             # only hyper and nginx (stand-in body)
#
# Environment:
#   DURATION      seconds per wrk round (default 5)
#   ROUNDS        rounds per target; targets alternate a,b,c,a,b,c... (default 3)
#   WARMUP        seconds of unrecorded wrk warm-up per target (default 1, 0 = none)
#   THREADS       wrk threads (default 1)
#   CONNECTIONS   wrk connections (default 50)
#   SKIP_HTTPQ    1 = leave out the httpq target (e.g. while the example does not build)
#   READY_TIMEOUT seconds to wait for a target to answer (default 30)
set -euo pipefail

# --- settings ---------------------------------------------------------------

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK="$BENCH_DIR/work"
RESULTS="$BENCH_DIR/results"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# The exact invocation, with the settings that were given explicitly.
COMMAND_LINE=""
for var in DURATION ROUNDS WARMUP THREADS CONNECTIONS SKIP_HTTPQ READY_TIMEOUT; do
    if [[ -n "${!var+set}" ]]; then
        COMMAND_LINE+="$var=$(printf '%q' "${!var}") "
    fi
done
COMMAND_LINE+="bench/run.sh"
if (($#)); then
    COMMAND_LINE+=" $(printf '%q ' "$@")"
    COMMAND_LINE=${COMMAND_LINE% }
fi

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-50}
SKIP_HTTPQ=${SKIP_HTTPQ:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}

HTTPQ_ADDR=127.0.0.1:18081
HYPER_ADDR=127.0.0.1:18082
NGINX_ADDR=127.0.0.1:18083
DAEMON_ADDR=127.0.0.1:18084 # httpqd + hello as a separate process (daemon mode)
PROXY_ADDR=127.0.0.1:18085  # nginx reverse proxy in front of the hyper server
TUNED_ADDR=127.0.0.1:18086  # daemon mode with HTTPQ_MAX_ACCEPTS=512

BASELINE=hyper # ratios are req/s divided by this target's req/s
BODY_FILE="$WORK/body.txt"

# --- helpers ----------------------------------------------------------------

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench/run.sh: error: %s\n' "$*" >&2
    exit 1
}

# Run as root, or through sudo when we are not.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        say "installing ${missing[*]} with apt-get"
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; then
            as_root apt-get update
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
        fi
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    command -v cargo >/dev/null || die "cargo not found on PATH"
}

build() {
    say "building release binaries"
    (
        cd "$ROOT"
        cargo build --release -p httpq-bench --bin hyper-hello
        if [[ $SKIP_HTTPQ != 1 ]]; then
            cargo build --release -p httpq-examples --example hello -p httpqd --bin httpqd ||
                die "the hello example (or the httpq crates) does not build; fix it or run with SKIP_HTTPQ=1"
        fi
    )
    HYPER_BIN="$TARGET_DIR/release/hyper-hello"
    HELLO_BIN="$TARGET_DIR/release/examples/hello"
    HTTPQD_BIN="$TARGET_DIR/release/httpqd"
}

# Does URL answer 2xx right now?
answers() { curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; }

# --- targets ----------------------------------------------------------------
#
# A target is a name, a URL to load, a label for the table and a start
# function. The start function must run the server in the foreground (use
# `exec`); start_target runs it in the background in its own process group,
# logs to $WORK/NAME.log, tracks the PID and waits until the URL answers. New
# targets need only an add_target line and a start function.

TARGETS=()
declare -A TARGET_URL=() TARGET_LABEL=() TARGET_START=() TARGET_PID=()
declare -A SAME_SIZE_ONLY=()
declare -A ROUND_RPS=() ROUND_P50=() ROUND_P99=() ROUND_ERRORS=() RESPONSE_BYTES=()
# CPU per request in each round, in microseconds: the target's processes (its whole process
# group: httpqd and the app, nginx's master and workers, the proxied hyper), and wrk's.
declare -A ROUND_CPU=() ROUND_WRK_CPU=()
CLK_TCK=$(getconf CLK_TCK)

# add_target NAME URL START_FN LABEL
add_target() {
    TARGETS+=("$1")
    TARGET_URL[$1]=$2
    TARGET_START[$1]=$3
    TARGET_LABEL[$1]=$4
}

start_target() {
    local name=$1 url=${TARGET_URL[$1]} log="$WORK/$1.log" pid deadline
    [[ -z ${TARGET_PID[$name]:-} ]] || return 0 # already running
    if answers "$url"; then
        die "$url already answers before $name was started; stop whatever listens there"
    fi
    say "starting $name on $url (log: ${log#"$ROOT"/})"
    # Job control on just for this: the target gets its own process group, so
    # cleanup can stop it and any children, and Ctrl-C reaches only this script.
    set -m
    "${TARGET_START[$name]}" >"$log" 2>&1 </dev/null &
    pid=$!
    set +m
    TARGET_PID[$name]=$pid
    deadline=$((SECONDS + READY_TIMEOUT))
    until answers "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            die "$name exited before answering $url"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$log" >&2 || true
            die "$name did not answer $url within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

stop_all() {
    local name pid i
    for name in "${!TARGET_PID[@]}"; do
        pid=${TARGET_PID[$name]}
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${!TARGET_PID[@]}"; do
        pid=${TARGET_PID[$name]}
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "TARGET_PID[$name]"
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#TARGET_PID[@]})); then
        say "stopping targets"
        stop_all
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_httpq() {
    HTTPQ_URLS="http://$HTTPQ_ADDR/" RUST_LOG=warn exec "$HELLO_BIN"
}

# Daemon mode: the httpqd listener owns the port; hello runs as its own process and receives
# requests over the Unix socket.
start_daemon() {
    local dir="$WORK/httpqd" sock="$WORK/httpqd/httpq.sock" i
    rm -rf "$dir"
    mkdir -p "$dir"
    RUST_LOG=warn "$HTTPQD_BIN" --state-dir "$dir/state" --socket "$sock" &
    for i in $(seq 1 200); do
        [[ -S $sock ]] && break
        sleep 0.05
    done
    HTTPQ_SOCKET="$sock" HTTPQ_URLS="http://$DAEMON_ADDR/" RUST_LOG=warn exec "$HELLO_BIN"
}

# Daemon mode with more request credits than HTTP.sys's default (5 x cores): each credit is one
# request on its way over the IPC, so more of them let one round trip carry more requests.
start_daemon_tuned() {
    local dir="$WORK/httpqd-tuned" sock="$WORK/httpqd-tuned/httpq.sock" i
    rm -rf "$dir"
    mkdir -p "$dir"
    RUST_LOG=warn "$HTTPQD_BIN" --state-dir "$dir/state" --socket "$sock" &
    for i in $(seq 1 200); do
        [[ -S $sock ]] && break
        sleep 0.05
    done
    HTTPQ_MAX_ACCEPTS=512 HTTPQ_SOCKET="$sock" HTTPQ_URLS="http://$TUNED_ADDR/" RUST_LOG=warn exec "$HELLO_BIN"
}

start_hyper() {
    exec "$HYPER_BIN" --addr "$HYPER_ADDR" --body-file "$BODY_FILE"
}

# Escape text for a double-quoted nginx config string. nginx has no escape for
# `$` in `return` text, so `$` goes through a variable holding a literal `$`.
nginx_quote() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//\$/\$\{httpq_dollar\}}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

write_nginx_conf() {
    local dir="$WORK/nginx" body
    mkdir -p "$dir/logs" "$dir/tmp"
    body=$(
        cat "$BODY_FILE"
        printf x
    ) # keep trailing newlines
    body=${body%x}
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh; do not edit.
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    geo \$httpq_dollar { default "\$"; }

    server {
        listen $NGINX_ADDR;
        location / {
            default_type "text/plain; charset=utf-8";
            return 200 $(nginx_quote "$body");
        }
    }
}
EOF
    "$NGINX" -t -q -c "$dir/nginx.conf" -p "$dir/" -e "$dir/logs/error.log" ||
        die "nginx rejected $dir/nginx.conf"
}

start_nginx() {
    local dir="$WORK/nginx"
    exec "$NGINX" -c "$dir/nginx.conf" -p "$dir/" -e "$dir/logs/error.log"
}

# nginx as a reverse proxy in front of the hyper server, keep-alive upstream: the usual Linux
# way to share one port between services.
write_proxy_conf() {
    local dir="$WORK/nginx-proxy"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh; do not edit.
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    upstream hyper {
        server $HYPER_ADDR;
        keepalive 64;
    }

    server {
        listen $PROXY_ADDR;
        location / {
            proxy_pass http://hyper;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    "$NGINX" -t -q -c "$dir/nginx.conf" -p "$dir/" -e "$dir/logs/error.log" ||
        die "nginx rejected $dir/nginx.conf"
}

start_proxy() {
    local dir="$WORK/nginx-proxy"
    exec "$NGINX" -c "$dir/nginx.conf" -p "$dir/" -e "$dir/logs/error.log"
}

register_targets() {
    if [[ $SKIP_HTTPQ != 1 ]]; then
        add_target httpq "http://$HTTPQ_ADDR/" start_httpq "httpq embedded (examples/hello)"
    fi
    add_target hyper "http://$HYPER_ADDR/" start_hyper "hyper $(crate_version hyper) (bench/hyper-hello)"
    add_target nginx "http://$NGINX_ADDR/" start_nginx "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    if [[ $SKIP_HTTPQ != 1 && ${SKIP_DAEMON:-0} != 1 ]]; then
        add_target daemon "http://$DAEMON_ADDR/" start_daemon "httpq daemon (httpqd + hello process)"
        add_target tuned "http://$TUNED_ADDR/" start_daemon_tuned "httpq daemon, HTTPQ_MAX_ACCEPTS=512"
        add_target proxy "http://$PROXY_ADDR/" start_proxy "nginx reverse proxy -> hyper (keep-alive upstream)"
        SAME_SIZE_ONLY[daemon]=1 # its body names its own prefix and pid: same length, other bytes
        SAME_SIZE_ONLY[tuned]=1
    fi
}

# Version of a crate as locked in Cargo.lock (for the table labels).
crate_version() {
    awk -v crate="$1" '
        $0 == "name = \"" crate "\"" { getline; gsub(/version = |"/, ""); print; exit }
    ' "$ROOT/Cargo.lock" 2>/dev/null || true
}

# The body every target must answer: httpq's own response, fetched once. With
# SKIP_HTTPQ=1 a stand-in of similar shape is used.
establish_body() {
    if [[ $SKIP_HTTPQ != 1 ]]; then
        start_target httpq
        curl -fsS --max-time 5 -o "$BODY_FILE" "${TARGET_URL[httpq]}" ||
            die "could not fetch the body from httpq"
    else
        printf 'Hello from httpq!\nprefix: http://%s/\npid: %d\n' "$HTTPQ_ADDR" "$$" >"$BODY_FILE"
    fi
    [[ -s $BODY_FILE ]] || die "empty body from httpq"
    BODY_BYTES=$(wc -c <"$BODY_FILE")
}

# Every target must answer 200 with exactly the same body bytes.
check_bodies() {
    local name got failed=0
    for name in "${TARGETS[@]}"; do
        curl -fsS --max-time 5 -o "$WORK/body.$name" "${TARGET_URL[$name]}" ||
            die "$name: request to ${TARGET_URL[$name]} failed"
        got=$(curl -s "${TARGET_URL[$name]}" | wc -c)
        RESPONSE_BYTES[$name]=$(curl -s -i "${TARGET_URL[$name]}" | wc -c)
        say "$name: body $got bytes, response ${RESPONSE_BYTES[$name]} bytes (status line + headers + body)"
        if [[ -n ${SAME_SIZE_ONLY[$name]:-} ]]; then
            # Differs only in the port and pid it names; allow the pid's digit count to differ.
            if ((got < BODY_BYTES - 2 || got > BODY_BYTES + 2)); then
                printf 'bench/run.sh: error: %s answers %s body bytes, expected about %s\n' \
                    "$name" "$got" "$BODY_BYTES" >&2
                failed=1
            fi
        elif ! cmp -s "$BODY_FILE" "$WORK/body.$name" || ((got != BODY_BYTES)); then
            printf 'bench/run.sh: error: %s answers %s body bytes, expected %s identical to %s\n' \
                "$name" "$got" "$BODY_BYTES" "$BODY_FILE" >&2
            failed=1
        fi
    done
    ((failed == 0)) || die "targets do not answer the same body; refusing to compare them"
}

# --- measuring --------------------------------------------------------------

write_wrk_script() {
    WRK_LUA="$WORK/report.lua"
    cat >"$WRK_LUA" <<'EOF'
-- Generated by bench/run.sh: print the numbers the script needs, unrounded.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HTTPQ_BENCH rps=%.2f p50_us=%.1f p99_us=%.1f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
}

wrk_args() { printf '%s\n' "-t$THREADS" "-c$CONNECTIONS" "-d${1}s" --latency -s "$WRK_LUA"; }

# group_ticks PGID: user + system clock ticks used so far by every process of the group.
group_ticks() {
    local total=0 p
    for p in $(pgrep -g "$1"); do
        # The fields after the command name (which may hold spaces): utime is the 12th.
        [[ -r /proc/$p/stat ]] && total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

# children_seconds: user + system CPU seconds of this script's finished children (its
# cutime and cstime; wrk is one, run in the foreground).
children_seconds() {
    sed 's/.*) //' "/proc/$$/stat" | awk -v t="$CLK_TCK" '{ printf "%.3f", ($14 + $15) / t }'
}

# run_round NAME ROUND: one wrk run; records it in ROUND_* unless ROUND is "warmup".
run_round() {
    local name=$1 round=$2 out="$WORK/wrk-$1-$2.txt" line rps p50 p99 errors requests
    local ticks0 ticks1 wrk0 wrk1
    local -a args
    mapfile -t args < <(wrk_args "$([[ $round == warmup ]] && echo "$WARMUP" || echo "$DURATION")")
    ticks0=$(group_ticks "${TARGET_PID[$name]}")
    wrk0=$(children_seconds)
    wrk "${args[@]}" "${TARGET_URL[$name]}" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk failed against $name"
    }
    wrk1=$(children_seconds)
    ticks1=$(group_ticks "${TARGET_PID[$name]}")
    line=$(grep '^HTTPQ_BENCH ' "$out") || die "no result line in $out"
    [[ $round == warmup ]] && return 0
    requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
    ROUND_CPU[$name]+="$(awk -v d="$((ticks1 - ticks0))" -v t="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? d * 1e6 / t / n : 0) }') "
    ROUND_WRK_CPU[$name]+="$(awk -v a="$wrk0" -v b="$wrk1" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? (b - a) * 1e6 / n : 0) }') "
    rps=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.* p50_us=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.* p99_us=([0-9.]+).*/\1/' <<<"$line")
    errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
    ROUND_RPS[$name]+="$rps "
    ROUND_P50[$name]+="$p50 "
    ROUND_P99[$name]+="$p99 "
    ROUND_ERRORS[$name]+="$errors "
    say "$name round $round: $(printf '%.0f' "$rps") req/s, p50 $(us_to_ms "$p50") ms, p99 $(us_to_ms "$p99") ms$( ((errors == 0)) || echo ", $errors ERRORS")"
}

us_to_ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }

measure() {
    local name round
    if ((WARMUP > 0)); then
        for name in "${TARGETS[@]}"; do
            say "warming up $name (${WARMUP}s)"
            run_round "$name" warmup
        done
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
        for name in "${TARGETS[@]}"; do
            run_round "$name" "$round"
        done
    done
}

# median_of "X Y Z ...": the median (the lower one for an even count).
median_of() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }

# median_round NAME: prints "rps p50_us p99_us" of the round with the median
# req/s (the lower median for an even number of rounds).
median_round() {
    local name=$1
    paste -d' ' \
        <(tr ' ' '\n' <<<"${ROUND_RPS[$name]}" | sed '/^$/d') \
        <(tr ' ' '\n' <<<"${ROUND_P50[$name]}" | sed '/^$/d') \
        <(tr ' ' '\n' <<<"${ROUND_P99[$name]}" | sed '/^$/d') |
        sort -g -k1,1 |
        awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'
}

# --- reporting --------------------------------------------------------------

commit_id() {
    local id
    id=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || id=nocommit
    # Results files do not change what is measured, so they do not make it dirty.
    if [[ -n $(git -C "$ROOT" status --porcelain -- . ':(exclude)bench/results' 2>/dev/null) ]]; then
        id+=-dirty
    fi
    printf '%s' "$id"
}

report() {
    local name round rps p50 p99 base_rps ratio cpu date stamp
    cpu=$(grep -m1 -E '^(model name|Hardware|cpu model)' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
    date=$(date -u '+%Y-%m-%d %H:%M UTC')
    stamp=$(date -u '+%Y-%m-%d')

    declare -A med_rps=() med_p50=() med_p99=()
    for name in "${TARGETS[@]}"; do
        read -r rps p50 p99 < <(median_round "$name")
        med_rps[$name]=$rps
        med_p50[$name]=$p50
        med_p99[$name]=$p99
    done
    base_rps=${med_rps[$BASELINE]:-}

    {
        echo "# httpq HTTP/1.1 benchmark, $date"
        echo
        echo "- machine: $(nproc) CPUs (\`nproc\`), ${cpu:-unknown CPU}, kernel $(uname -r)"
        echo "- commit: $COMMIT"
        echo "- command: \`$COMMAND_LINE\`"
        echo "- wrk: \`wrk $(wrk_args "$DURATION" | sed "s|$ROOT/||" | tr '\n' ' ')URL\`," \
            "$ROUNDS rounds per target, targets alternated round by round" \
            "($( ((WARMUP > 0)) && echo "${WARMUP}s unrecorded warm-up each" || echo "no warm-up"));" \
            "each row shows the median round by req/s"
        echo "- body: $BODY_BYTES bytes$([[ $SKIP_HTTPQ == 1 ]] && echo " (stand-in: httpq skipped)")," \
            "byte-identical for every target; all on loopback," \
            "wrk and the servers share the machine's CPUs"
        echo "- toolchain: $(rustc --version 2>/dev/null || echo 'rustc ?'), release profile"
        echo
        echo "| target | req/s | p50 ms | p99 ms | ratio to $BASELINE | server CPU µs / request | wrk CPU µs / request |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for name in "${TARGETS[@]}"; do
            if [[ -n $base_rps ]]; then
                ratio=$(awk -v a="${med_rps[$name]}" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
            else
                ratio=n/a
            fi
            printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "${TARGET_LABEL[$name]}" "${med_rps[$name]}" \
                "$(us_to_ms "${med_p50[$name]}")" "$(us_to_ms "${med_p99[$name]}")" "$ratio" \
                "$(median_of "${ROUND_CPU[$name]}")" "$(median_of "${ROUND_WRK_CPU[$name]}")"
        done
        echo
        echo "CPU per request: user + system time over each round (\`/proc/PID/stat\` of every process in the target's process group; wrk's from this script's children's time), divided by its requests; the median of the rounds. On two cores shared with wrk, req/s follows the sum of the two columns."
        if [[ -n ${med_rps[httpq]:-} && -n $base_rps ]]; then
            ratio=$(awk -v a="${med_rps[httpq]}" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
            echo
            echo "Goal (issue 10) httpq embedded / hyper >= 1.0: $ratio, $(awk -v r="$ratio" 'BEGIN { print (r >= 1.0 ? "met" : "NOT met") }')."
        fi
        if [[ -n ${med_rps[daemon]:-} && -n $base_rps && -n ${med_rps[proxy]:-} ]]; then
            ratio=$(awk -v a="${med_rps[daemon]}" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
            echo "Goal (issue 10) httpq daemon / hyper >= 0.75 (stretch 0.85), default configuration: $ratio, $(awk -v r="$ratio" 'BEGIN { print (r >= 0.85 ? "met, stretch too" : r >= 0.75 ? "met" : "NOT met") }')."
            ratio=$(awk -v a="${med_rps[daemon]}" -v b="${med_rps[proxy]}" 'BEGIN { printf "%.2f", a / b }')
            echo "Goal (issue 10) httpq daemon / nginx reverse proxy >= 1.5: $ratio, $(awk -v r="$ratio" 'BEGIN { print (r >= 1.5 ? "met" : "NOT met") }')."
        fi
        if [[ -n ${med_rps[tuned]:-} && -n $base_rps && -n ${med_rps[proxy]:-} ]]; then
            ratio=$(awk -v a="${med_rps[tuned]}" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
            echo "With HTTPQ_MAX_ACCEPTS=512 (not the default, so not the goal): daemon / hyper $ratio;" \
                "daemon / nginx reverse proxy $(awk -v a="${med_rps[tuned]}" -v b="${med_rps[proxy]}" 'BEGIN { printf "%.2f", a / b }')."
        fi
        echo
        echo "## Rounds (req/s)"
        echo
        printf '| target |'
        for ((round = 1; round <= ROUNDS; round++)); do printf ' %d |' "$round"; done
        printf ' errors | response bytes |\n|---|'
        for ((round = 1; round <= ROUNDS; round++)); do printf -- '---:|'; done
        printf -- '---:|---:|\n'
        for name in "${TARGETS[@]}"; do
            printf '| %s |' "$name"
            for rps in ${ROUND_RPS[$name]}; do printf ' %.0f |' "$rps"; done
            printf ' %s | %s |\n' \
                "$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<<"${ROUND_ERRORS[$name]}")" \
                "${RESPONSE_BYTES[$name]}"
        done
        echo
        echo "errors: wrk connect/read/write/timeout errors and non-2xx/3xx responses, all rounds."
        echo "response bytes: status line + headers + body of one response."
    } >"$WORK/report.md"

    mkdir -p "$RESULTS"
    RESULT_FILE="$RESULTS/$stamp-$COMMIT-h1.md"
    cp "$WORK/report.md" "$RESULT_FILE"
    cp "$WORK/report.md" "$RESULTS/latest-h1.md"
    echo
    cat "$WORK/report.md"
    echo
    say "saved ${RESULT_FILE#"$ROOT"/} and bench/results/latest-h1.md"
}

# --- main -------------------------------------------------------------------

main() {
    mkdir -p "$WORK"
    COMMIT=$(commit_id) # before anything is written
    ensure_tools
    build
    register_targets
    establish_body
    write_nginx_conf
    write_proxy_conf
    for name in "${TARGETS[@]}"; do start_target "$name"; done
    check_bodies
    write_wrk_script
    measure
    report
}

main "$@"
