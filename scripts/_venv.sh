# Sourced by scripts/run and scripts/test: make .venv (Python >= 3.11) and install nigraan into it
# when missing or when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NIGRAAN_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "nigraan needs Python 3.11 or newer; none found on PATH." >&2
  echo "Install it (e.g. apt-get install python3 python3-venv) and run this again." >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)"
  echo "Creating virtualenv $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.nigraan-installed${EXTRAS:+-$EXTRAS}"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing nigraan${EXTRAS:+[$EXTRAS]} into $VENV (log: $VENV/install.log)" >&2
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -e "$ROOT${EXTRAS:+[$EXTRAS]}"; } >"$VENV/install.log" 2>&1; then
    tail -n 40 "$VENV/install.log" >&2
    echo "Installing nigraan failed; the whole log is $VENV/install.log." >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

if ! command -v java >/dev/null 2>&1; then
  echo "Java is missing: ODK Validate (inside pyxform) needs it to check forms." >&2
  echo "Install it with: apt-get install -y default-jre-headless" >&2
  exit 1
fi
export PATH="$VENV/bin:$PATH"
