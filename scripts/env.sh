# Shared settings for the scripts (sourced, not run).
#
# Build output lives outside the clone so repeated runs (and CI on the same machine)
# reuse it; override CARGO_TARGET_DIR to put it elsewhere. One folder per checkout:
# the integration tests live outside the host package (tests/), so cargo records
# their absolute paths, and two checkouts sharing a target folder would each see the
# other's test binaries as up to date.
repo_root=$(pwd -P)
checkout_key=$(printf '%s' "$repo_root" | sha256sum | cut -c1-12)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target/$checkout_key}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
