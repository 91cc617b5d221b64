#!/usr/bin/env bash
# Keeps the build cache from filling the disk, and says so plainly when the disk is
# too full to build, before a linker dies of it (a full disk shows up as
# "ld terminated with signal 7 [Bus error]").
#
# Called by test.sh, quickstart.sh and bench.sh before they build. Cargo never removes
# what it built for an older Cargo.lock, feature set or flag, so a long-lived cache
# only grows; and every checkout has a folder of its own (scripts/env.sh). So:
#   1. other checkouts' folders under ~/.cache/sluice/target not used for
#      SLUICE_BUILD_CACHE_STALE_DAYS (default 3) days are removed (only when this
#      checkout uses that default place too);
#   2. this checkout's folder, once over SLUICE_BUILD_CACHE_CAP_GB (default 30), loses
#      its incremental state and, if still over, everything but the downloaded test
#      servers: the next build starts cold (test.sh: ~20 minutes here), not failing;
#   3. the build needs room to reach its full size (SLUICE_BUILD_CACHE_FULL_GB,
#      default 16: a whole `scripts/test.sh` build measured 10 GB): with less free,
#      it stops with the numbers and what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

stale_days=${SLUICE_BUILD_CACHE_STALE_DAYS:-3}
cap_gb=${SLUICE_BUILD_CACHE_CAP_GB:-30}
full_gb=${SLUICE_BUILD_CACHE_FULL_GB:-16}
default_root="$HOME/.cache/sluice/target"
stamp=.sluice-last-used

size_gb() { du -s --block-size=1G "$1" 2>/dev/null | cut -f1; }   # rounded up
human() { du -sh "$1" 2>/dev/null | cut -f1; }
free_gb() { df -P --block-size=1G "$1" | awk 'NR == 2 {print $4}'; }

mkdir -p "$CARGO_TARGET_DIR"
touch "$CARGO_TARGET_DIR/$stamp"

if [ "$(dirname "$CARGO_TARGET_DIR")" = "$default_root" ]; then
  for other in "$default_root"/*/; do
    other=${other%/}
    [ "$other" = "$CARGO_TARGET_DIR" ] && continue
    used="$other/$stamp"
    [ -e "$used" ] || used="$other"
    if [ -n "$(find "$used" -maxdepth 0 -mtime +"$stale_days" 2>/dev/null)" ]; then
      echo "==> build cache: removing $other ($(human "$other"), another checkout's, unused for over $stale_days days)"
      rm -rf "$other"
    fi
  done
fi

size=$(size_gb "$CARGO_TARGET_DIR")
if [ "$size" -gt "$cap_gb" ]; then
  echo "==> build cache: $CARGO_TARGET_DIR is $size GB (cap $cap_gb GB): removing its incremental state"
  rm -rf "$CARGO_TARGET_DIR"/*/incremental "$CARGO_TARGET_DIR"/*/*/incremental
  size=$(size_gb "$CARGO_TARGET_DIR")
fi
if [ "$size" -gt "$cap_gb" ]; then
  echo "==> build cache: still $size GB: removing the build output (kept: downloaded test servers); this build starts cold"
  find "$CARGO_TARGET_DIR" -mindepth 1 -maxdepth 1 \
    ! -name test-servers ! -name "$stamp" ! -name CACHEDIR.TAG -exec rm -rf {} +
  rm -rf "$CARGO_TARGET_DIR/test-servers/run"
  size=$(size_gb "$CARGO_TARGET_DIR")
fi

free=$(free_gb "$CARGO_TARGET_DIR")
need=$((full_gb - size))
[ "$need" -lt 2 ] && need=2
if [ "$free" -lt "$need" ]; then
  cat >&2 <<EOF
build cache: only $free GB free on the disk holding $CARGO_TARGET_DIR, and this build may
need $need GB more (a full build is ~$full_gb GB; the folder has $size GB now).
Free some space, or point CARGO_TARGET_DIR at a bigger disk.
EOF
  exit 1
fi
