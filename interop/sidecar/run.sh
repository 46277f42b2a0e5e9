#!/usr/bin/env bash
# Microsoft's sidecar adapter for the Agents SDK
# (microsoft-agents-authentication-entra-auth-sidecar from PyPI, unmodified)
# against axum-obo-sidecar started in embedded mode (Entra and Graph stand-ins)
# on a loopback port: see interop.py. Needs python3 (installs python3-venv
# through apt when `python3 -m venv` fails) and network access to PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${INTEROP_VENV:-$root/target/interop-sidecar-venv}"

# shellcheck source=../venv.sh
. "$here/../venv.sh"
"$venv/bin/pip" install -q --disable-pip-version-check "microsoft-agents-authentication-entra-auth-sidecar==1.9.0"

(cd "$root" && cargo build -q -p axum-obo-sidecar)
demo="$(mktemp)"
log="$(mktemp)"
: >"$demo"
# Port 0: the sidecar picks a free loopback port and writes it to the demo file.
AXUM_OBO_SIDECAR_DEMO_FILE="$demo" ASPNETCORE_URLS="http://127.0.0.1:0" \
    "$root/target/debug/axum-obo-sidecar" >"$log" 2>&1 &
sidecar=$!
cleanup() {
    kill -TERM "$sidecar" 2>/dev/null || true
    wait "$sidecar" 2>/dev/null || true
    rm -f "$demo" "$log"
}
trap cleanup EXIT
for _ in $(seq 100); do
    [ -s "$demo" ] && break
    sleep 0.1
done
[ -s "$demo" ] || { echo "the sidecar did not start"; cat "$log"; exit 1; }

"$venv/bin/python" "$here/interop.py" "$demo"
# The sidecar logged its work, never a token.
if grep -q "eyJ" <(grep -v "TOKEN=\|BEARER\|^  curl" "$log"); then
    echo "a token in the sidecar's log"; exit 1
fi
