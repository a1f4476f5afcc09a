#!/usr/bin/env bash
# Pins the Dockerfile's base images by digest, for reproducible images.
#
# For each base image the Dockerfile names (rust:<RUST_VERSION>-bookworm and debian:bookworm-slim),
# asks the registry for the digest the tag points at now (`docker buildx imagetools inspect`: the
# multi-platform index, so amd64 and arm64 builds share one pin) and writes it into the Dockerfile's
# RUST_DIGEST / DEBIAN_DIGEST default. Review the change and commit it. Run it again whenever
# RUST_VERSION changes or to take the base images' security updates.
#
# Needs Docker with buildx and access to Docker Hub. Nothing is written unless both digests were
# obtained and have the form sha256:<64 hex digits>.
#
#   scripts/pin-base-images.sh            # pins ./Dockerfile
#   DOCKERFILE=path scripts/pin-base-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile="${DOCKERFILE:-Dockerfile}"

rust_version="$(sed -n 's/^ARG RUST_VERSION=//p' "$dockerfile")"
if ! [[ "$rust_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "pin-base-images: ARG RUST_VERSION in $dockerfile is not a full version (x.y.z): '$rust_version'" >&2
    exit 1
fi

# The image references, as the Dockerfile's FROM lines spell them (without the digest part).
rust_image="docker.io/library/rust:${rust_version}-bookworm"
debian_image="docker.io/library/debian:bookworm-slim"

digest_of() {
    local out digest
    if ! out="$(docker buildx imagetools inspect "$1")"; then
        echo "pin-base-images: cannot inspect $1 (is Docker with buildx installed, and the registry reachable?)" >&2
        return 1
    fi
    # The first `Digest:` line is the one of the reference itself (the index); the per-platform
    # manifests follow it.
    digest="$(printf '%s\n' "$out" | sed -n 's/^Digest:[[:space:]]*//p' | head -n 1)"
    if ! [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
        echo "pin-base-images: no digest for $1 in the registry's answer" >&2
        return 1
    fi
    printf '%s' "$digest"
}

rust_digest="$(digest_of "$rust_image")"
debian_digest="$(digest_of "$debian_image")"

pinned="$(sed -e "s|^ARG RUST_DIGEST=.*|ARG RUST_DIGEST=${rust_digest}|" \
    -e "s|^ARG DEBIAN_DIGEST=.*|ARG DEBIAN_DIGEST=${debian_digest}|" "$dockerfile")"
printf '%s\n' "$pinned" >"$dockerfile"
echo "pinned $rust_image@$rust_digest"
echo "pinned $debian_image@$debian_digest"
