#!/usr/bin/env bash
# Instructions per request of the hot paths for several builds of the crate, side
# by side in one run (callgrind: load-independent, so builds compare on a busy
# machine). Written for the `metrics` feature: the crate before it, with the
# feature off, on without a recorder, and on with a Prometheus recorder.
#
#   bash benches/callgrind-compare.sh
#   BUILDS="base=d5f8c51 off=HEAD:nometrics on=HEAD" N=2000 bash benches/callgrind-compare.sh
#
# Each build is LABEL=REV[:nometrics][:prometheus]: the committed tree of REV
# (`git archive`, so uncommitted changes are not measured) in a directory of its
# own under WORK_DIR. `nometrics` removes `metrics` from the crate's
# dev-dependency on itself (the benches are built with that dependency's
# features, so this is how the feature is turned off for them), and the script
# checks that no metric name is left in the binary; `prometheus` runs the same
# binary with `HOTPATH_RECORDER=prometheus` (a recorder installed). Every build
# is `cargo bench -p axum-obo --bench hotpath --no-run` (release) in
# CARGO_TARGET_DIR (default target/callgrind-compare: keep it apart from the
# debug builds), then `hotpath VARIANT N` runs under
# `valgrind --tool=callgrind --toggle-collect=*measured*` as in callgrind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
VARIANTS=${VARIANTS:-"bare obo-uncached obo-cached obo-token"}
BUILDS=${BUILDS:-"base=d5f8c51 off=HEAD:nometrics on=HEAD on+recorder=HEAD:prometheus"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/callgrind-compare}
WORK_DIR=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/axum-obo-cg-compare.XXXXXX")}
mkdir -p "$WORK_DIR"
command -v valgrind >/dev/null || { echo "callgrind-compare.sh: valgrind is required" >&2; exit 1; }
repo=$PWD

declare -A BIN ENVS REVS OPTS
labels=()
# Every revision resolved before the first build (HEAD may move during a long run).
for spec in $BUILDS; do
    label=${spec%%=*}
    IFS=: read -r rev opts <<<"${spec#*=}"
    labels+=("$label")
    REVS[$label]=$(git -C "$repo" rev-parse --short "$rev")
    OPTS[$label]=${opts:-as committed}
done
for spec in $BUILDS; do
    label=${spec%%=*}
    IFS=: read -r _ opts <<<"${spec#*=}"
    rev=${REVS[$label]}
    tree="$WORK_DIR/tree-${REVS[$label]}${opts:+-${opts//:/-}}"
    tree=${tree%-prometheus}
    if [ ! -d "$tree" ]; then
        mkdir -p "$tree"
        git -C "$repo" archive "$rev" | tar -x -C "$tree"
        if [[ :$opts: == *:nometrics:* ]]; then
            # The self dev-dependency: `axum-obo = { path = ".", features = [..., "metrics"] }`.
            sed -i -E '/^axum-obo = \{ path = "\."/ s/, "metrics"|"metrics", ?//' "$tree/Cargo.toml"
            grep -q '^axum-obo = { path = "\.".*"metrics"' "$tree/Cargo.toml" &&
                { echo "callgrind-compare.sh: could not turn metrics off in $tree" >&2; exit 1; }
        fi
    fi
    echo "building $label (${REVS[$label]}${opts:+ $opts}) in $tree" >&2
    bin=$(cd "$tree" && cargo bench -p axum-obo --bench hotpath --no-run --message-format=json-render-diagnostics |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep hotpath | tail -n 1)
    [ -x "$bin" ] || { echo "callgrind-compare.sh: no hotpath executable for $label" >&2; exit 1; }
    # Each tree builds its own binary (the package's path is part of its hash);
    # keep a copy, so that a later build in the same target cannot replace it.
    cp "$bin" "$WORK_DIR/hotpath.$label"
    BIN[$label]="$WORK_DIR/hotpath.$label"
    # Recording sites name their metric: a binary without any has the feature off.
    names=$(grep -c -a 'axum_obo_validations_total' "${BIN[$label]}" || true)
    if [[ :$opts: == *:nometrics:* ]] && [ "$names" != 0 ]; then
        echo "callgrind-compare.sh: $label still records metrics" >&2
        exit 1
    fi
    echo "  $label: metric names in the binary: $names" >&2
    ENVS[$label]=$([[ :$opts: == *:prometheus:* ]] && echo prometheus || echo "")
done

declare -A IR
for v in $VARIANTS; do
    n=$N
    case $v in obo-uncached) n=$((N / 4)) ;; esac
    for label in "${labels[@]}"; do
        out="$WORK_DIR/callgrind.$label.$v"
        HOTPATH_RECORDER=${ENVS[$label]} valgrind --tool=callgrind --toggle-collect='*measured*' \
            --callgrind-out-file="$out" "${BIN[$label]}" "$v" "$n" >"$WORK_DIR/log.$label.$v" 2>&1 ||
            { cat "$WORK_DIR/log.$label.$v" >&2; exit 1; }
        total=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$out" | head -n 1 | awk '{ print $1 }')
        IR[$label.$v]=$(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f", t / n }')
        echo "  $label $v: ${IR[$label.$v]} instructions per request" >&2
    done
done

first=${labels[0]}
echo
echo "Instructions per request (callgrind), N=$N ($((N / 4)) for obo-uncached); builds:"
for label in "${labels[@]}"; do echo "- $label: ${REVS[$label]}, ${OPTS[$label]//:/, }"; done
echo
printf '| variant |'
for label in "${labels[@]}"; do printf ' %s |' "$label"; done
for label in "${labels[@]:1}"; do printf ' %s vs %s |' "$label" "$first"; done
echo
printf '|---|'
for _ in "${labels[@]}" "${labels[@]:1}"; do printf -- '---:|'; done
echo
for v in $VARIANTS; do
    printf '| %s |' "$v"
    for label in "${labels[@]}"; do printf ' %s |' "${IR[$label.$v]}"; done
    for label in "${labels[@]:1}"; do
        awk -v a="${IR[$label.$v]}" -v b="${IR[$first.$v]}" \
            'BEGIN { printf " %+d (%+.2f%%) |", a - b, (a - b) * 100 / b }'
    done
    echo
done
echo "(callgrind outputs in $WORK_DIR)"
