#!/usr/bin/env bash
# Microsoft's own Entra Agent ID clients (msal >= 1.39 and
# microsoft-agents-authentication-msal 1.9.0, from PyPI, unmodified) against the
# axum-obo Entra stand-in: see interop.py. Needs python3 (installs python3-venv
# through apt when `python3 -m venv` fails) and network access to PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${INTEROP_VENV:-$root/target/interop-agents-venv}"

# shellcheck source=../venv.sh
. "$here/../venv.sh"
"$venv/bin/pip" install -q --disable-pip-version-check "msal>=1.39" "microsoft-agents-authentication-msal==1.9.0"
"$venv/bin/python" -c 'import msal; print("msal", msal.__version__)'

(cd "$root" && cargo build -q -p axum-obo-testing --example agents_interop)
state="$(mktemp)"
fifo="$(mktemp -u)"
mkfifo "$fifo"
# The stand-in serves until its stdin (the fifo) closes.
"$root/target/debug/examples/agents_interop" <"$fifo" >"$state" &
standin=$!
exec 3>"$fifo"
cleanup() {
    exec 3>&-
    wait "$standin" 2>/dev/null || true
    rm -f "$fifo" "$state"
}
trap cleanup EXIT
for _ in $(seq 100); do
    [ -s "$state" ] && break
    sleep 0.1
done
[ -s "$state" ] || { echo "the stand-in did not start"; exit 1; }

proxy="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["proxy"])' "$state")"
ca="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca_file"])' "$state")"
HTTPS_PROXY="$proxy" https_proxy="$proxy" NO_PROXY="" no_proxy="" \
    REQUESTS_CA_BUNDLE="$ca" SSL_CERT_FILE="$ca" \
    "$venv/bin/python" "$here/interop.py" "$state"
