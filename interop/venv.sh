# Sourced by the interop scripts: makes the virtual environment "$venv" (installing
# python3-venv through apt when `python3 -m venv` fails, as on a bare Debian).
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        echo "== installing python3-venv"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
