#!/usr/bin/env bash
# Build the WASM plugins (wasm32-wasip2 components) and copy them where pipelines
# and tests look for them: plugins/dist/ (shipped) and tests/plugins/dist/ (test-only).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "==> installing the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

echo "==> building plugins (wasm32-wasip2)"
out="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
mkdir -p plugins/dist tests/plugins/dist
# Test builds of format_user for the swap tests (each overwrites format_user.wasm, so
# they go first and the shipped build last).
for feature in v2 trap_all refuse_init; do
  cargo build --quiet --target wasm32-wasip2 --profile plugin -p format_user --features "$feature"
  cp "$out/format_user.wasm" "tests/plugins/dist/format_user_$feature.wasm"
done
for feature in state_v2 state_v2_no_migrate no_projection projection_twice; do
  cargo build --quiet --target wasm32-wasip2 --profile plugin -p gender_window --features "$feature"
  cp "$out/gender_window.wasm" "tests/plugins/dist/gender_window_$feature.wasm"
done
cargo build --quiet --target wasm32-wasip2 --profile plugin -p running_count --features state_v2
cp "$out/running_count.wasm" tests/plugins/dist/running_count_state_v2.wasm
cargo build --quiet --target wasm32-wasip2 --profile plugin \
  -p format_user -p gender_window -p route_by_field -p dedup -p running_count -p enrich -p misbehave
cp "$out/format_user.wasm" "$out/gender_window.wasm" "$out/route_by_field.wasm" \
  "$out/dedup.wasm" "$out/running_count.wasm" "$out/enrich.wasm" plugins/dist/
cp "$out/misbehave.wasm" tests/plugins/dist/
ls -l plugins/dist/*.wasm tests/plugins/dist/*.wasm | awk '{print "    " $5 " bytes  " $NF}'
