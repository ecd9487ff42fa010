# syntax=docker/dockerfile:1
#
# Portcullis container image.
#   docker build -t portcullis .
#   docker run -d --name portcullis --stop-timeout 30 \
#     -p 8080:8080 -p 127.0.0.1:9091:9091 -v portcullis-data:/var/lib/portcullis portcullis
# deploy/README.md explains the volumes, the default configuration and the probes.
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts below.

# ---------------------------------------------------------------- build
# The crate's rust-version is 1.88; CI builds with 1.95. The builder and the runtime
# stage are both Debian 12 (bookworm), so the glibc the binary is linked against is the
# one it runs with.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# One crate: its dependencies cannot be built before src/ is copied without a dummy
# main.rs trick, so the registry and target/ live in BuildKit cache mounts instead and
# a rebuild after a source change recompiles the crate only. target/ in a cache mount
# is not part of the image: the binary is copied out in the same step.
# The build context is limited by .dockerignore to what cargo needs.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portcullis \
 && cp target/release/portcullis /usr/local/bin/portcullis

# ---------------------------------------------------------------- runtime
# debian:bookworm-slim rather than gcr.io/distroless/cc-debian12:nonroot: distroless has
# no shell, curl or wget, and Portcullis has no health-check subcommand, so a distroless
# image could carry no real HEALTHCHECK. slim with curl is some tens of MB larger and
# buys a HEALTHCHECK that asks the admin listener's /healthz. The binary links glibc
# only (libc, libm, libgcc_s: TLS is rustls, SQLite is compiled in, no OpenSSL).
# ca-certificates: the system roots rustls uses to fetch [[issuers]] JWKS over HTTPS.
FROM debian:bookworm-slim

# DL3008: versions are not pinned on purpose — a rebuild picks up the point release's
# security fixes for curl and the CA bundle.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root UID/GID (10001) that Kubernetes manifests can name in runAsUser and
# fsGroup (deploy/kubernetes/). /var/lib/portcullis is owned by it before VOLUME, so a
# new named volume starts out writable by the gateway.
RUN groupadd --system --gid 10001 portcullis \
 && useradd --system --uid 10001 --gid portcullis --no-create-home \
      --home-dir /var/lib/portcullis --shell /usr/sbin/nologin portcullis \
 && mkdir -p /etc/portcullis /var/lib/portcullis \
 && chown portcullis:portcullis /var/lib/portcullis \
 && chmod 0750 /var/lib/portcullis

COPY --from=builder /usr/local/bin/portcullis /usr/local/bin/portcullis
# The default configuration, owned by root and not writable by the gateway's user.
COPY deploy/docker/gateway.toml /etc/portcullis/gateway.toml

# /etc/portcullis: the configuration; mount yours over it, read-only (`:ro`).
# /var/lib/portcullis: the data the gateway writes (SQLite store, created keys).
VOLUME ["/etc/portcullis", "/var/lib/portcullis"]
WORKDIR /var/lib/portcullis
# `docker exec portcullis portcullis users …` and `check` find the file without --config.
ENV PORTCULLIS_CONFIG=/etc/portcullis/gateway.toml

USER 10001:10001
# 8080: the public listener. 9091: the admin listener (/healthz, /readyz); keep it private.
EXPOSE 8080 9091

# Liveness of the process, from the admin listener (the default configuration's
# admin_listen). A configuration with another admin port needs --health-cmd.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "--output", "/dev/null", "http://127.0.0.1:9091/healthz"]

# SIGTERM (docker stop): /readyz turns 503, the gateway serves on for
# server.shutdown_delay, then drains for up to server.shutdown_drain; give docker stop
# a -t above their sum. SIGHUP (docker kill -s HUP) reloads the configuration.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run", "--config", "/etc/portcullis/gateway.toml"]
