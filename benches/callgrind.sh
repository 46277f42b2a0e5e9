#!/usr/bin/env bash
# Instructions per request of each hot path, counted by callgrind: load-independent,
# so builds and variants compare on a busy machine.
#
#   bash benches/callgrind.sh            # all variants
#   VARIANTS="bare obo-cached" N=2000 bash benches/callgrind.sh
#
# Runs `hotpath VARIANT N` (benches/cost/hotpath.rs) under
# `valgrind --tool=callgrind --toggle-collect=*measured*` and prints a Markdown
# table: instructions per request, added over bare axum, and for the uncached
# path the ratio of the added instructions to one pre-parsed RSA verification.
# Callgrind outputs are kept in OUT_DIR (callgrind_annotate them for the profile).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
VARIANTS=${VARIANTS:-"bare obo-uncached obo-cached obo-token obo-cached-many rsa-verify jwt-floor jwt-preparsed"}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/axum-obo-callgrind.XXXXXX")}
mkdir -p "$OUT_DIR"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is required" >&2; exit 1; }

bin=$(cargo bench --bench hotpath --no-run --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep hotpath | tail -n 1)
[ -x "$bin" ] || { echo "callgrind.sh: no hotpath executable" >&2; exit 1; }

declare -A IR
for v in $VARIANTS; do
    n=$N
    case $v in obo-uncached | rsa-verify | jwt-*) n=$((N / 4)) ;; esac
    out="$OUT_DIR/callgrind.$v"
    valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$out" \
        "$bin" "$v" "$n" >"$OUT_DIR/log.$v" 2>&1 || { cat "$OUT_DIR/log.$v" >&2; exit 1; }
    total=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$out" | head -n 1 | awk '{ print $1 }')
    IR[$v]=$(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f", t / n }')
    echo "  $v: ${IR[$v]} instructions per request" >&2
done

echo
echo "Instructions per request (callgrind), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), N=$N"
echo
echo "| variant | instructions/request | added over bare |"
echo "|---|---:|---:|"
for v in $VARIANTS; do
    added="—"
    if [ -n "${IR[bare]:-}" ] && [[ $v == obo-* ]]; then
        added=$((IR[$v] - IR[bare]))
    fi
    printf '| %s | %s | %s |\n' "$v" "${IR[$v]}" "$added"
done
if [ -n "${IR[bare]:-}" ] && [ -n "${IR[obo-uncached]:-}" ] && [ -n "${IR[rsa-verify]:-}" ]; then
    echo
    awk -v a="$((IR[obo-uncached] - IR[bare]))" -v r="${IR[rsa-verify]}" \
        'BEGIN { printf "Uncached path: added instructions = %.2f× one pre-parsed RSA verify (target ≤ 1.35×)\n", a / r }'
fi
echo "(callgrind outputs in $OUT_DIR)"
