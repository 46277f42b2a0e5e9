#!/usr/bin/env bash
# Load benchmark: what OboLayer costs per request over real HTTP, next to a bare
# axum handler, the raw jsonwebtoken decode and the jwt-authorizer crate.
#
#   bash benches/load.sh
#
# Each variant runs on loopback with an embedded Entra stand-in, with a
# realistic ~1.5 KB RS256 (2048-bit) token on every request, driven by wrk with
# the same settings in the same run. Repetitions are interleaved (every variant
# once, then again) so that drifting machine load hits all variants alike. The
# server is pinned to one core and wrk to another when there are two or more.
# Prints a Markdown table: median req/s, p50 and p99 latency, the server's CPU
# time per request (from /proc: robust when other processes share the machine),
# and ratios against bare axum. Figures are reported, not asserted.
#
# Environment (defaults): DURATION (10s), WARMUP (2s), REPS (3), CONNECTIONS (32),
# THREADS (wrk threads, 1), SERVER_CPU (0), CLIENT_CPU (1), PORT (first port,
# 38080), NICE (niceness of server and wrk, e.g. -10 as root on a busy machine;
# 0), VARIANTS ("bare jwt-floor obo-uncached obo-cached obo-token
# obo-cached-10k jwt-authorizer"), OUT_DIR (raw wrk outputs; a new temporary
# directory). obo-cached-10k sends 10,000 users' tokens in rotation
# (benches/rotate.lua); its server takes a while to mint them.
# To compare a change in the same run: ALT_SERVER (the load_server executable of
# another build, e.g. a patched checkout) and ALT_VARIANTS (variants to run with
# it too; their rows are marked "alt").
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s\n' "$*" >&2; }
die() {
    log "load.sh: $*"
    exit 1
}

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-38080}
NICE=${NICE:-0}
VARIANTS=${VARIANTS:-"bare jwt-floor obo-uncached obo-cached obo-token obo-cached-10k jwt-authorizer"}
ALT_SERVER=${ALT_SERVER:-}
ALT_VARIANTS=${ALT_VARIANTS:-}
if [ -n "$ALT_SERVER" ]; then
    [ -x "$ALT_SERVER" ] || die "ALT_SERVER is not an executable: $ALT_SERVER"
    for v in $ALT_VARIANTS; do VARIANTS="$VARIANTS alt:$v"; done
fi
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/axum-obo-load.XXXXXX")}
mkdir -p "$OUT_DIR"

# --- tools ------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package) ..."
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "wrk is missing and there is no sudo: install wrk"
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

server_pin=()
client_pin=()
pinned=no
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    server_pin=(taskset -c "$SERVER_CPU")
    client_pin=(taskset -c "$CLIENT_CPU")
    pinned=yes
else
    log "note: fewer than 2 cores or no taskset: server and wrk are not pinned"
fi
if [ "$NICE" != 0 ]; then
    server_pin=(nice -n "$NICE" "${server_pin[@]}")
    client_pin=(nice -n "$NICE" "${client_pin[@]}")
fi

# --- build (release) ----------------------------------------------------------
executable() { sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep "$1" | tail -n 1; }
log "building the load server and the jwt-authorizer peer (release) ..."
server_bin=$(cargo bench --bench load_server --no-run --message-format=json-render-diagnostics |
    executable load_server) || die "building the load server failed"
[ -x "$server_bin" ] || die "no load_server executable"
peer_bin=""
if [[ " $VARIANTS " == *"jwt-authorizer "* ]]; then
    peer_bin=$(cargo build --release --locked --manifest-path bench-peer/Cargo.toml \
        --message-format=json-render-diagnostics | executable bench-peer) ||
        die "building bench-peer failed"
    [ -x "$peer_bin" ] || die "no bench-peer executable"
fi

# --- processes ----------------------------------------------------------------
pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap stop_all EXIT

wait_for_file() { # FILE PID
    for _ in $(seq 1 3000); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || die "the server exited before it was ready"
        sleep 0.1
    done
    die "timed out waiting for $1"
}

wait_for_port() { # PORT PID
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || die "the server exited before it listened"
        sleep 0.1
    done
    die "timed out waiting for port $1"
}

info_value() { sed -n "s/^$2=//p" "$1"; }

# Starts VARIANT on PORT; sets $token and $measured_pid (the process to measure).
start_variant() { # VARIANT PORT
    local variant=$1 port=$2 info="$OUT_DIR/info.$1" bin=$server_bin
    if [[ $variant == alt:* ]]; then
        variant=${variant#alt:}
        bin=$ALT_SERVER
    fi
    rm -f "$info"
    if [ "$variant" = jwt-authorizer ]; then
        "${server_pin[@]}" "$bin" idp "$info" >"$OUT_DIR/server.log" 2>&1 &
        pids+=($!)
        wait_for_file "$info" "$!"
        "${server_pin[@]}" "$peer_bin" "$(info_value "$info" jwks_url)" \
            "$(info_value "$info" issuer)" "$(info_value "$info" audience)" "$port" \
            >>"$OUT_DIR/server.log" 2>&1 &
        pids+=($!)
        measured_pid=$!
        wait_for_port "$port" "$!"
    else
        "${server_pin[@]}" "$bin" serve "$variant" "$port" "$info" >"$OUT_DIR/server.log" 2>&1 &
        pids+=($!)
        measured_pid=$!
        wait_for_file "$info" "$!"
    fi
    token=$(info_value "$info" token)
    tokens_file=$(info_value "$info" tokens)
}

# CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

run_wrk() { # PORT DURATION OUTPUT
    if [ -n "$tokens_file" ]; then
        "${client_pin[@]}" wrk -t "$THREADS" -c "$CONNECTIONS" -d "$2" --latency \
            -s benches/rotate.lua "http://127.0.0.1:$1/" -- "$tokens_file" >"$3" 2>&1
    else
        "${client_pin[@]}" wrk -t "$THREADS" -c "$CONNECTIONS" -d "$2" --latency \
            -H "Authorization: Bearer $token" "http://127.0.0.1:$1/" >"$3" 2>&1
    fi
    if grep -q "Non-2xx or 3xx responses" "$3"; then
        cat "$3" >&2
        die "non-2xx responses: see $3 and $OUT_DIR/server.log"
    fi
}

# --- runs -------------------------------------------------------------------
log "wrk -t $THREADS -c $CONNECTIONS -d $DURATION (warm-up $WARMUP), $REPS repetitions, raw output in $OUT_DIR"
for rep in $(seq 1 "$REPS"); do
    # One pre-parsed RSA verification, on the server's CPU, in this run.
    "${server_pin[@]}" "$server_bin" rsa-verify >"$OUT_DIR/rsa.$rep" 2>>"$OUT_DIR/server.log" ||
        die "load_server rsa-verify failed"
    log "  rep $rep: one pre-parsed RSA verify $(cat "$OUT_DIR/rsa.$rep") µs"
    i=0
    for variant in $VARIANTS; do
        port=$((PORT + i))
        i=$((i + 1))
        start_variant "$variant" "$port"
        run_wrk "$port" "$WARMUP" "$OUT_DIR/warmup.$variant.$rep"
        before=$(cpu_ticks "$measured_pid")
        run_wrk "$port" "$DURATION" "$OUT_DIR/wrk.$variant.$rep"
        echo "$(($(cpu_ticks "$measured_pid") - before))" >"$OUT_DIR/cpu.$variant.$rep"
        stop_all
        log "  rep $rep $variant: $(sed -n 's/^Requests\/sec: *//p' "$OUT_DIR/wrk.$variant.$rep") req/s"
    done
done

# --- report -----------------------------------------------------------------
to_us() { # wrk's "812.00us" / "1.23ms" / "2.00s" -> microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : 0
        printf "%.1f", n * f }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A RPS P50 P99 SPREAD CPU
for variant in $VARIANTS; do
    rps=() p50=() p99=() cpu=()
    for rep in $(seq 1 "$REPS"); do
        f="$OUT_DIR/wrk.$variant.$rep"
        rps+=("$(sed -n 's/^Requests\/sec: *//p' "$f")")
        p50+=("$(to_us "$(awk '$1 == "50%" { print $2 }' "$f")")")
        p99+=("$(to_us "$(awk '$1 == "99%" { print $2 }' "$f")")")
        requests=$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$f")
        cpu+=("$(awk -v t="$(cat "$OUT_DIR/cpu.$variant.$rep")" -v n="$requests" -v hz="$CLK_TCK" \
            'BEGIN { printf "%.2f", t * 1e6 / hz / n }')")
    done
    CPU[$variant]=$(printf '%s\n' "${cpu[@]}" | median)
    RPS[$variant]=$(printf '%s\n' "${rps[@]}" | median)
    P50[$variant]=$(printf '%s\n' "${p50[@]}" | median)
    P99[$variant]=$(printf '%s\n' "${p99[@]}" | median)
    SPREAD[$variant]=$(printf '%s\n' "${rps[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')
done

RSA_VERIFY_US=$(cat "$OUT_DIR"/rsa.* | median)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
label() {
    if [[ $1 == alt:* ]]; then
        echo "$(label "${1#alt:}") [alt]"
        return
    fi
    case $1 in
    bare) echo "1. bare axum handler" ;;
    jwt-floor) echo "1b. raw jsonwebtoken::decode middleware (floor)" ;;
    obo-uncached) echo "2. OboLayer, validated-token cache off" ;;
    obo-cached) echo "3. OboLayer, validated-token cache (default)" ;;
    obo-token) echo "4. OboLayer + OboToken from the OBO cache" ;;
    obo-cached-10k) echo "3b. OboLayer, validated-token cache, 10,000 users in rotation" ;;
    jwt-authorizer) echo "5. jwt-authorizer 0.15 (peer)" ;;
    *) echo "$1" ;;
    esac
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
echo
echo "axum-obo load benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
echo "one pre-parsed RSA-2048 verify on the server's CPU: $RSA_VERIFY_US µs (median of $REPS)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(nproc) cores ($cpu_model); server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU (pinned: $pinned, nice $NICE);" \
    "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, median of $REPS interleaved runs"
echo
echo "| variant | req/s | req/s range | p50 (µs) | p99 (µs) | server CPU µs/req | req/s vs bare | CPU/req: bare ÷ variant |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
base=${RPS[bare]:-0}
basecpu=${CPU[bare]:-0}
for variant in $VARIANTS; do
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$(label "$variant")" "${RPS[$variant]}" \
        "${SPREAD[$variant]}" "${P50[$variant]}" "${P99[$variant]}" "${CPU[$variant]}" \
        "$(ratio "${RPS[$variant]}" "$base")" "$(ratio "$basecpu" "${CPU[$variant]}")"
done

verdict() { awk -v r="$1" -v m="$2" 'BEGIN { print (r >= m) ? "met" : "MISSED" }'; }
target() { # NAME A B MIN
    [ -n "${RPS[$2]:-}" ] && [ -n "${RPS[$3]:-}" ] || return 0
    local r c
    r=$(ratio "${RPS[$2]}" "${RPS[$3]}")
    c=$(ratio "${CPU[$3]}" "${CPU[$2]}")
    printf -- '- %s (target ≥ %s×): req/s %s× %s; CPU per request %s× %s\n' "$1" "$4" \
        "$r" "$(verdict "$r" "$4")" "$c" "$(verdict "$c" "$4")"
}
echo
echo "Targets (ratios in the same run; CPU per request as the inverse ratio):"
target "3 vs bare" obo-cached bare 0.85
target "4 vs bare" obo-token bare 0.80
target "3b (10,000 users) vs 3 (one user)" obo-cached-10k obo-cached 0.90
target "2 vs raw decode floor" obo-uncached jwt-floor 0.95
target "2 vs jwt-authorizer" obo-uncached jwt-authorizer 1.15
if [ -n "${CPU[obo-uncached]:-}" ] && [ -n "${CPU[bare]:-}" ] && [ -n "${RSA_VERIFY_US:-}" ]; then
    awk -v v="${CPU[obo-uncached]}" -v b="${CPU[bare]}" -v r="$RSA_VERIFY_US" 'BEGIN {
        a = v - b; q = a / r
        printf "- 2: added CPU per request %.1f µs = %.2f× one pre-parsed RSA verify (%.1f µs, `load_server rsa-verify`, same run) (target ≤ 1.35×): %s\n", a, q, r, (q <= 1.35) ? "met" : "MISSED" }'
fi
