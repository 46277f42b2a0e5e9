#!/usr/bin/env bash
# The sidecar's performance, side by side in one run (release build, embedded
# mode on the Entra and Graph stand-ins, loopback):
#
#   bash sidecar/bench.sh
#
# - requests/s of `GET /AuthorizationHeader/graph` with a cached On-Behalf-Of
#   token (one user) next to the sidecar's own `GET /healthz`, under the same
#   wrk load, repetitions interleaved; and the ratio;
# - `GET /AuthorizationHeader/graph` over 10,000 distinct users (their
#   tokens in rotation: every user's first request is an exchange);
# - resident memory (VmRSS) idle, and after the 10,000 users;
# - start-up time to the first answered `/healthz`;
# - the release binary's size (and stripped).
#
# Environment (defaults): DURATION (10s), REPS (3), CONNECTIONS (32), THREADS (1),
# USERS (10000), PORT (38180), BIN (an existing binary instead of the release build), SERVER_CPU (0) and CLIENT_CPU (1) when the
# machine has two cores or more. Installs wrk from Debian when it is missing.
# Figures are reported, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
REPS=${REPS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
USERS=${USERS:-10000}
PORT=${PORT:-38180}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

log() { printf '%s\n' "$*" >&2; }
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package) ..."
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

pin_server=()
pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    pin_server=(taskset -c "$SERVER_CPU")
    pin_client=(taskset -c "$CLIENT_CPU")
fi

if [ -n "${BIN:-}" ]; then
    bin=$BIN # e.g. target/debug/axum-obo-sidecar, to try the script quickly
else
    log "building the release binary ..."
    cargo build -q --release -p axum-obo-sidecar
    bin=target/release/axum-obo-sidecar
fi
work="$(mktemp -d)"
demo="$work/demo.json"
server=""
cleanup() {
    [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

# Start-up: spawn to the first answered /healthz (embedded mode also starts the
# stand-ins and mints the tokens, so this start has no users to mint).
start=$(now_ms)
ASPNETCORE_URLS="http://127.0.0.1:$PORT" AXUM_OBO_SIDECAR_DEMO_FILE="$demo" RUST_LOG=warn \
    "${pin_server[@]}" "$bin" >"$work/log" 2>&1 &
server=$!
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.005; done
startup=$(( $(now_ms) - start ))
kill -TERM "$server"; wait "$server" 2>/dev/null || true

# The measured server, with the users' tokens.
rm -f "$demo"
ASPNETCORE_URLS="http://127.0.0.1:$PORT" AXUM_OBO_SIDECAR_DEMO_FILE="$demo" \
    AXUM_OBO_SIDECAR_DEMO_USERS="$USERS" RUST_LOG=warn \
    "${pin_server[@]}" "$bin" >"$work/log" 2>&1 &
server=$!
until [ -s "$demo" ]; do sleep 0.05; done
base="http://127.0.0.1:$PORT"
head -1 "$demo.tokens" >"$work/one"
curl -fs -H "Authorization: Bearer $(cat "$work/one")" "$base/AuthorizationHeader/graph" >/dev/null
sleep 1
idle=$(rss "$server")

run() { # name path [tokens]
    "${pin_client[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s sidecar/bench.lua "$base" -- "$2" ${3:+"$3"} \
        | awk '/Requests\/sec/ {print $2}'
}
declare -A rps
for rep in $(seq "$REPS"); do
    for v in healthz header; do
        case $v in
            healthz) r=$(run healthz /healthz) ;;
            header) r=$(run header /AuthorizationHeader/graph "$work/one") ;;
        esac
        rps[$v]="${rps[$v]:-} $r"
        log "rep $rep $v: $r req/s"
    done
done
many=$(run many /AuthorizationHeader/graph "$demo.tokens")
after=$(rss "$server")

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
h=$(echo "${rps[healthz]}" | median)
a=$(echo "${rps[header]}" | median)
size=$(stat -c %s "$bin")
strip -o "$work/stripped" "$bin" 2>/dev/null || cp "$bin" "$work/stripped"
stripped=$(stat -c %s "$work/stripped")

cat <<TABLE
| measure | value |
|---|---|
| \`GET /healthz\` (median of $REPS, $CONNECTIONS connections, $DURATION) | $h req/s |
| \`GET /AuthorizationHeader/graph\`, cached On-Behalf-Of token | $a req/s ($(awk -v a="$a" -v h="$h" 'BEGIN {printf "%.2f", a/h}')× /healthz) |
| \`GET /AuthorizationHeader/graph\`, $USERS users in rotation (first request of each an exchange) | $many req/s |
| resident memory, idle (one user) | $(( idle / 1024 )) MiB |
| resident memory after $USERS users | $(( after / 1024 )) MiB |
| start-up to the first answered \`/healthz\` (embedded mode: stand-ins included) | ${startup} ms |
| release binary | $(( size / 1024 / 1024 )) MiB ($(( stripped / 1024 / 1024 )) MiB stripped) |
TABLE
