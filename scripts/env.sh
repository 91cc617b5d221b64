# Shared settings for the scripts (sourced, not run).
# Build output lives outside the clone so repeated runs (and CI on the same machine)
# reuse it; override CARGO_TARGET_DIR to put it elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
