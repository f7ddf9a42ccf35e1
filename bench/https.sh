#!/usr/bin/env bash
# httpq HTTPS benchmark: HTTP/2 over TLS with h2load (-c 50 -m 10) and the full-handshake
# rate (a new TLS connection for every request, wrk with `Connection: close`), against httpq
# embedded (examples/hello), httpq daemon (httpqd + hello as a separate process; also with
# HTTPQ_MAX_ACCEPTS=512) and nginx,
# all with the same ECDSA P-256 certificate and the same response body, on loopback.
#
#   bench/https.sh                       # DURATION=10 ROUNDS=3
#   DURATION=5 ROUNDS=1 bench/https.sh   # quick look
#
# Writes bench/results/<date>-<commit>-https.md and bench/results/latest-https.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK="$BENCH_DIR/work/https"
RESULTS="$BENCH_DIR/results"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
COMMAND_LINE="DURATION=$DURATION ROUNDS=$ROUNDS bench/https.sh"

EMBEDDED=18443
DAEMON=18444
NGINX_PORT=18445
TUNED=18446 # daemon mode with HTTPQ_MAX_ACCEPTS=512

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench/https.sh: error: %s\n' "$*" >&2
    exit 1
}

for tool in h2load wrk nginx openssl curl; do
    command -v "$tool" >/dev/null || [[ $tool == nginx && -x /usr/sbin/nginx ]] ||
        die "$tool is missing (apt-get install -y nghttp2-client wrk nginx openssl curl)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building release binaries"
(cd "$ROOT" && cargo build --release -q -p httpqd -p httpq-cli &&
    cargo build --release -q -p httpq-examples --example hello)
HELLO="$TARGET_DIR/release/examples/hello"
HTTPQD="$TARGET_DIR/release/httpqd"
CLI="$TARGET_DIR/release/httpq"

rm -rf "$WORK"
mkdir -p "$WORK/nginx/logs" "$WORK/httpqd"
openssl req -x509 -nodes -days 7 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {
    local url=$1 i
    for i in $(seq 1 100); do
        curl -fsk -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    die "$url never answered"
}

say "starting httpq embedded on $EMBEDDED"
HTTPQ_SOCKET=embedded HTTPQ_URLS="https://127.0.0.1:$EMBEDDED/" \
    HTTPQ_CERT_FILE="$WORK/cert.pem" HTTPQ_KEY_FILE="$WORK/key.pem" RUST_LOG=warn \
    "$HELLO" >"$WORK/embedded.log" 2>&1 &
PIDS+=($!)
EMBEDDED_PID=$!
wait_for "https://127.0.0.1:$EMBEDDED/"
BODY=$(curl -fsk "https://127.0.0.1:$EMBEDDED/")

say "starting httpqd + hello (daemon) on $DAEMON"
SOCK="$WORK/httpqd/httpq.sock"
RUST_LOG=warn "$HTTPQD" --state-dir "$WORK/httpqd/state" --socket "$SOCK" >"$WORK/httpqd.log" 2>&1 &
PIDS+=($!)
HTTPQD_PID=$!
for i in $(seq 1 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
HASH=$("$CLI" --socket "$SOCK" add cert certfile="$WORK/cert.pem" keyfile="$WORK/key.pem" --json |
    sed -n 's/.*"certhash":"\([0-9A-F]*\)".*/\1/p')
"$CLI" --socket "$SOCK" add sslcert ipport=0.0.0.0:$DAEMON certhash="$HASH" >/dev/null
HTTPQ_SOCKET="$SOCK" HTTPQ_URLS="https://127.0.0.1:$DAEMON/" RUST_LOG=warn \
    "$HELLO" >"$WORK/daemon-app.log" 2>&1 &
PIDS+=($!)
DAEMON_APP_PID=$!
wait_for "https://127.0.0.1:$DAEMON/"
"$CLI" --socket "$SOCK" add sslcert ipport=0.0.0.0:$TUNED certhash="$HASH" >/dev/null
HTTPQ_MAX_ACCEPTS=512 HTTPQ_SOCKET="$SOCK" HTTPQ_URLS="https://127.0.0.1:$TUNED/" RUST_LOG=warn \
    "$HELLO" >"$WORK/tuned-app.log" 2>&1 &
PIDS+=($!)
TUNED_APP_PID=$!
wait_for "https://127.0.0.1:$TUNED/"

say "starting nginx on $NGINX_PORT (same certificate, same body)"
printf '%s' "$BODY" >"$WORK/nginx/body.txt"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        keepalive_requests 1000000;
        root $WORK/nginx;
        location / {
            default_type text/plain;
            try_files /body.txt =404;
        }
    }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" -e "$WORK/nginx/logs/error.log" &
PIDS+=($!)
NGINX_PID=$!
wait_for "https://127.0.0.1:$NGINX_PORT/"
[[ $(curl -fsk "https://127.0.0.1:$NGINX_PORT/") == "$BODY" ]] || die "nginx serves another body"

declare -A H2=() HS=() HS_CPU=() WRK_CPU=()
# The processes that serve each target: their CPU time per handshake says what a full handshake
# costs the server. wrk -t1 is one thread, and near ~4,000 handshakes/s it is the bottleneck
# (its own TLS client work), so the handshake rate alone compares the client more than the
# servers.
declare -A SERVER_PIDS=([embedded]="$EMBEDDED_PID" [daemon]="$HTTPQD_PID $DAEMON_APP_PID"
    [tuned]="$HTTPQD_PID $TUNED_APP_PID" [nginx]="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')")
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # PIDS...: user + system clock ticks used so far, all threads
    local total=0 p
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
TARGETS=(embedded daemon tuned nginx)
declare -A PORT=([embedded]=$EMBEDDED [daemon]=$DAEMON [tuned]=$TUNED [nginx]=$NGINX_PORT)
declare -A LABEL=([embedded]="httpq embedded (hello)" [daemon]="httpq daemon (httpqd + hello)" [tuned]="httpq daemon, HTTPQ_MAX_ACCEPTS=512" [nginx]="nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///')")

for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGETS[@]}"; do
        say "round $round: $t, h2load -c 50 -m 10 -D $DURATION"
        rps=$(h2load -c 50 -m 10 -t 1 -D "$DURATION" "https://127.0.0.1:${PORT[$t]}/" 2>/dev/null |
            awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { gsub(",", "", $(i-1)); print $(i-1) } }')
        H2[$t]+="${rps:-0} "
        say "round $round: $t, wrk Connection: close (a full handshake per request)"
        # shellcheck disable=SC2086 # the pid lists split on purpose
        before=$(cpu_ticks ${SERVER_PIDS[$t]})
        # `times` after wrk: the CPU time of this subshell's children, that is wrk's.
        res=$(wrk -t1 -c50 -d"${DURATION}s" -H 'Connection: close' "https://127.0.0.1:${PORT[$t]}/" 2>/dev/null
            times)
        # shellcheck disable=SC2086
        after=$(cpu_ticks ${SERVER_PIDS[$t]})
        hs=$(awk '/^Requests\/sec/ { print $2 }' <<<"$res")
        n=$(awk '/requests in/ { print $1 }' <<<"$res")
        HS[$t]+="${hs:-0} "
        HS_CPU[$t]+="$(awk -v d="$((after - before))" -v t="$CLK_TCK" -v n="${n:-0}" 'BEGIN { printf "%.1f", (n > 0 ? d * 1e6 / t / n : 0) }') "
        # The children line of `times`: "XmY.YYYs XmY.YYYs" (user, system).
        WRK_CPU[$t]+="$(tail -1 <<<"$res" | awk -v d="$DURATION" '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 100 / d }') "
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(cd "$ROOT" && git rev-parse --short HEAD)
out="$RESULTS/$(date -u +%Y-%m-%d)-$commit-https.md"
{
    echo "# httpq HTTPS benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) CPUs, $cpu, kernel $(uname -r); load generator and servers share the CPUs"
    echo "- commit: $commit"
    echo "- command: \`$COMMAND_LINE\`"
    echo "- HTTP/2: \`h2load -c 50 -m 10 -t 1 -D $DURATION\`; handshakes: \`wrk -t1 -c50 -d${DURATION}s -H 'Connection: close'\` (TLS 1.3, X25519, ECDSA P-256, no resumption); $ROUNDS rounds each, median shown"
    echo "- body: ${#BODY} bytes, identical for every target"
    echo
    echo "| target | HTTP/2 req/s | ratio to nginx | full handshakes/s | ratio to nginx | server CPU µs / handshake | nginx's CPU / this | wrk CPU % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    n_h2=$(echo "${H2[nginx]}" | median)
    n_hs=$(echo "${HS[nginx]}" | median)
    n_cpu=$(echo "${HS_CPU[nginx]}" | median)
    for t in "${TARGETS[@]}"; do
        h2=$(echo "${H2[$t]}" | median)
        hs=$(echo "${HS[$t]}" | median)
        c=$(echo "${HS_CPU[$t]}" | median)
        printf '| %s | %.0f | %.2f | %.0f | %.2f | %.0f | %.2f | %s |\n' "${LABEL[$t]}" "$h2" \
            "$(awk -v a="$h2" -v b="$n_h2" 'BEGIN { print (b > 0 ? a / b : 0) }')" "$hs" \
            "$(awk -v a="$hs" -v b="$n_hs" 'BEGIN { print (b > 0 ? a / b : 0) }')" "$c" \
            "$(awk -v a="$n_cpu" -v b="$c" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
            "$(echo "${WRK_CPU[$t]}" | median)"
    done
    echo
    echo "Server CPU per handshake: user + system time of the target's processes (httpqd and the app for daemon mode, nginx's master and workers) during the handshake run, divided by its handshakes. wrk CPU %: the client's own, of one core; near 100 it is the bottleneck, and the handshake rates compare it more than the servers."
    echo
    # Issue 10's goals, each with its ratio.
    goal() { # LABEL RATIO MIN
        echo "Goal (issue 10) $1 >= $3: $2, $(awk -v r="$2" -v m="$3" 'BEGIN { print (r >= m ? "met" : "NOT met") }')."
    }
    ratio() { awk -v a="$(echo "$1" | median)" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
    goal "HTTP/2 embedded / nginx" "$(ratio "${H2[embedded]}" "$n_h2")" 1.0
    goal "HTTP/2 daemon / nginx" "$(ratio "${H2[daemon]}" "$n_h2")" 0.8
    goal "full handshakes, embedded / nginx" "$(ratio "${HS[embedded]}" "$n_hs")" 1.0
    goal "full handshakes, daemon / nginx" "$(ratio "${HS[daemon]}" "$n_hs")" 1.0
    # The same goal by what a handshake costs each server (client-bound rates aside).
    cost() { awk -v a="$n_cpu" -v b="$(echo "$1" | median)" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
    goal "full handshakes by server CPU per handshake, nginx / embedded" "$(cost "${HS_CPU[embedded]}")" 1.0
    goal "full handshakes by server CPU per handshake, nginx / daemon" "$(cost "${HS_CPU[daemon]}")" 1.0
    echo
    echo "Rounds: $(for t in "${TARGETS[@]}"; do printf '%s h2 [%s] hs [%s] hs-cpu-us [%s]; ' "$t" "${H2[$t]% }" "${HS[$t]% }" "${HS_CPU[$t]% }"; done)"
} >"$out"
cp "$out" "$RESULTS/latest-https.md"
cat "$out"
