# Two commands, one multi-call binary (multicall/), one image. Build: docker build -t outpost .
# The `dist` profile (Cargo.toml) is the release profile with fat LTO, one codegen unit and stripped symbols.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked -p outpost \
 && cp target/dist/outpost /usr/local/bin/outpost-agent

# Runtime: Debian slim rather than distroless, because SSH remotes need the OpenSSH client (gix runs `ssh`,
# through /bin/sh as git does for core.sshCommand). CA certificates for HTTPS; a non-root UID.
# Image size was not measured: no Docker engine runs where this was built.
# The UID has a passwd entry because OpenSSH refuses to run without one ("No user exists for uid 65532"). Its
# home does not exist: ssh runs with -F /dev/null, our known_hosts and a key copy in the cache, so it never
# looks for ~/.ssh, and the root filesystem is read-only (the chart mounts emptyDirs for the caches and /tmp).
# --no-log-init: no sparse lastlog entry for a high UID. tests/env/image-rootfs.sh replays these RUN lines and
# tests/e2e/image.rs runs the agent over SSH in the result, as this UID, with a read-only root.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 outpost \
 && useradd --no-log-init --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin outpost
COPY --from=build /usr/local/bin/outpost-agent /usr/local/bin/
# The status writer is the same file under its own name (the binary dispatches on the name it runs as).
RUN ln -s outpost-agent /usr/local/bin/outpost-status-writer
# Two malloc arenas instead of one per thread: the same speed for us, a third less resident memory.
ENV MALLOC_ARENA_MAX=2
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/outpost-agent"]
