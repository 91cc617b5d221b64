#!/usr/bin/env bash
# Validate docker-compose.yml offline (no Docker engine here): the PyPI docker-compose
# 1.29.2 checks the schema (keys, depends_on conditions, healthchecks, ports) and the
# ${VAR} interpolation. Installed once into a venv under ~/.cache/sluice.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${SLUICE_COMPOSE_VENV:-$HOME/.cache/sluice/compose-venv}"
if [ ! -x "$venv/bin/docker-compose" ]; then
  echo "==> installing docker-compose 1.29.2 (for offline validation) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-deps docker-compose==1.29.2
  # Its own pins ask for PyYAML<6, which no longer builds on current Pythons (pip
  # says so, and it works).
  "$venv/bin/pip" install --quiet "PyYAML>=6" dockerpty docopt "jsonschema<4" \
    "python-dotenv<1" "requests<3" texttable "websocket-client<1" distro "docker<7" setuptools
fi

"$venv/bin/docker-compose" -f docker-compose.yml config --quiet
# The pipelines the sluice service runs must exist.
for p in $(grep -o 'pipelines/[a-z_]*\.toml' docker-compose.yml | sort -u); do
  [ -f "$p" ] || { echo "docker-compose.yml runs $p, which does not exist" >&2; exit 1; }
done
echo "docker-compose.yml is valid"
