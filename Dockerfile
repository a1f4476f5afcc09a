# syntax=docker/dockerfile:1.7
#
# Waggle: Nextcloud External App (ExApp) image.
#
#   scripts/pin-base-images.sh        # once per toolchain or base-image update: pins the digests below
#   docker build -t ghcr.io/waggle-connector/waggle:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/waggle-connector/waggle:0.1.0 --push .
#
# Stages:
#   chef     Rust toolchain + cargo-chef (dependency-layer caching)
#   planner  computes the dependency recipe from the manifests
#   builder  builds the dependencies (cached while Cargo.toml/Cargo.lock are unchanged), then waggle
#   frpc     downloads frpc (FRP client for HaRP) and verifies its checksum; curl stays out of the runtime
#   runtime  debian:bookworm-slim + ca-certificates + frpc + waggle + start.sh
#
# The runtime must stay a real distribution image: at install time HaRP runs `cat /etc/os-release`,
# `mkdir -p /certs/frp` and `update-ca-certificates` inside the container (docs/DEPLOY.md).
# scratch/distroless images break HaRP installs.

# Reproducible images: the Rust toolchain is pinned by version, and both base images by digest (the
# multi-platform index digest, so amd64 and arm64 builds use the same pin). The digests are not typed
# by hand: `scripts/pin-base-images.sh` resolves them (`docker buildx imagetools inspect`) and writes
# them into RUST_DIGEST and DEBIAN_DIGEST below; commit the result. While a digest is empty the build
# stops at once with that instruction, unless `--build-arg ALLOW_UNPINNED=1` is given (a throw-away
# local build that uses whatever the tags point at today).
# RUST_VERSION must be at least Cargo.toml's rust-version; change it together with the digests.
ARG RUST_VERSION=1.95.0
ARG RUST_DIGEST=
ARG DEBIAN_DIGEST=
ARG ALLOW_UNPINNED=

# ---------------------------------------------------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm${RUST_DIGEST:+@${RUST_DIGEST}} AS chef
ARG RUST_DIGEST
ARG DEBIAN_DIGEST
ARG ALLOW_UNPINNED
RUN if [ -z "${RUST_DIGEST}" ] || [ -z "${DEBIAN_DIGEST}" ]; then \
        if [ "${ALLOW_UNPINNED}" = 1 ]; then \
            echo "warning: building from unpinned base images (ALLOW_UNPINNED=1)" >&2; \
        else \
            echo "The base images are not pinned: run scripts/pin-base-images.sh and commit the result" \
                "(or pass --build-arg ALLOW_UNPINNED=1 for a throw-away local build)." >&2; \
            exit 1; \
        fi; \
    fi
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /build

# ---------------------------------------------------------------------------------------------
FROM chef AS planner
# The whole (dockerignored) tree: cargo-chef needs every manifest and declared target to write
# the recipe. Only recipe.json leaves this stage, so unrelated edits do not bust the cook layer.
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Dependencies only; this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --bin waggle --recipe-path recipe.json
# The real sources: Cargo.toml, Cargo.lock, src/, and config/ + web/, which the crate embeds at
# compile time (config/defaults.toml via include_str!, web/ via rust-embed). The whole dockerignored
# tree is copied rather than a fixed list so that targets declared in Cargo.toml with explicit
# paths (tests/, benches, build.rs) never make cargo reject the manifest. This replaces the dummy
# sources cargo-chef wrote; cook already removed the dummy artifacts of the waggle crate itself.
COPY . .
RUN cargo build --release --locked --bin waggle \
    && install -m 0755 target/release/waggle /usr/local/bin/waggle

# ---------------------------------------------------------------------------------------------
# Runs on the build platform (no emulation needed) and fetches the tarball of the target platform.
FROM --platform=$BUILDPLATFORM docker.io/library/debian:bookworm-slim${DEBIAN_DIGEST:+@${DEBIAN_DIGEST}} AS frpc
ARG TARGETARCH
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# FRP 0.61.1, the version HaRP's README tells ExApps to ship. The checksums are those published in
# nextcloud/HaRP README.md, section "Adapting ExApps to use HaRP" (sha256 of the upstream release
# tarballs). They are constants of this RUN, not build args, so a --build-arg cannot swap them.
# To upgrade: change the version and both sums together, from frp_sha256_checksums.txt of the release.
RUN set -eu; \
    FRP_VERSION=0.61.1; \
    FRP_AMD64_SHA256=bff260b68ca7b1461182a46c4f34e9709ba32764eed30a15dd94ac97f50a2c40; \
    FRP_ARM64_SHA256=af6366f2b43920ebfe6235dba6060770399ed1fb18601e5818552bd46a7621f8; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
        amd64) sum="$FRP_AMD64_SHA256" ;; \
        arm64) sum="$FRP_ARM64_SHA256" ;; \
        *) echo "unsupported architecture: $arch (amd64 and arm64 only)" >&2; exit 1 ;; \
    esac; \
    name="frp_${FRP_VERSION}_linux_${arch}"; \
    curl --proto '=https' --tlsv1.2 -fsSL --retry 3 \
        "https://github.com/fatedier/frp/releases/download/v${FRP_VERSION}/${name}.tar.gz" \
        -o /tmp/frp.tar.gz; \
    echo "${sum}  /tmp/frp.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/frp.tar.gz -C /tmp "${name}/frpc"; \
    install -m 0755 "/tmp/${name}/frpc" /usr/local/bin/frpc; \
    rm -rf /tmp/frp.tar.gz "/tmp/${name}"

# ---------------------------------------------------------------------------------------------
FROM docker.io/library/debian:bookworm-slim${DEBIAN_DIGEST:+@${DEBIAN_DIGEST}} AS runtime
# ca-certificates: TLS to Nextcloud and the SaaS, and update-ca-certificates for HaRP's CA install.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY --from=frpc /usr/local/bin/frpc /usr/local/bin/frpc
COPY --from=builder /usr/local/bin/waggle /usr/local/bin/waggle
COPY --chmod=0755 start.sh /start.sh

# Runs as root on purpose: HaRP's certificate install (docker exec as the image user) writes to
# /usr/local/share/ca-certificates, /etc/ssl/certs and /certs/frp.
# APP_PERSISTENT_STORAGE (/nc_app_waggle_data) is a volume mounted by AppAPI; nothing to create here.
# APP_PORT is assigned by AppAPI (23000-23999), so no EXPOSE.

# `waggle healthcheck` calls GET /heartbeat over the HaRP unix socket when HP_SHARED_KEY is set,
# otherwise over TCP APP_HOST:APP_PORT; no curl needed. HaRP waits for `healthy` when a
# HEALTHCHECK exists, so the short start interval speeds up installs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --start-interval=1s --retries=3 \
    CMD ["waggle", "healthcheck"]

LABEL org.opencontainers.image.title="Waggle" \
      org.opencontainers.image.description="Nextcloud External App connecting Nextcloud to a remote SaaS" \
      org.opencontainers.image.source="https://github.com/waggle-connector/waggle" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.version="0.1.0"

ENTRYPOINT ["/start.sh"]
CMD ["waggle"]
