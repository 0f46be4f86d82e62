#!/usr/bin/env bash
# The container image's root filesystem without a container engine, for tests/e2e/image.rs: debootstrap of the
# Debian suite the Dockerfile's runtime stage is FROM (debian:<suite>-slim is a minbase debootstrap), then that
# stage's RUN instructions replayed in a chroot with /bin/sh -c, as `docker build` runs them. Our binaries are
# not copied in: the test bind-mounts the ones it built over the empty files made here where the COPY puts
# them, so one cached tree serves debug and release builds.
#
# Cached under $OUTPOST_TEST_CACHE/image-rootfs: the debootstrap once per suite, the image once per hash of
# the runtime stage's FROM, RUN, COPY and USER lines and of this script (older images are removed). Prints the
# image's directory on the last line of stdout. Needs root (sudo otherwise) and the Debian mirror; safe to
# re-run, a second run only checks.
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
DOCKERFILE="${1:-$HERE/../../Dockerfile}"
STORE="$OUTPOST_TEST_CACHE/image-rootfs"

# The runtime stage: from the last FROM to the end, one instruction per line (continuations joined).
stage="$(awk '
  /^[[:space:]]*#/ { next }
  { line = cont ? line " " $0 : $0; cont = sub(/\\[[:space:]]*$/, "", line) }
  !cont { print line; line = "" }
' "$DOCKERFILE" | awk 'toupper($1) == "FROM" { n = NR } { all[NR] = $0 } END { for (i = n; i <= NR; i++) if (all[i] ~ /[^[:space:]]/) print all[i] }')"
from="$(printf '%s\n' "$stage" | awk 'NR == 1 { print $2 }')"
suite="$(printf '%s\n' "$from" | sed -n 's/^debian:\([a-z]*\)-slim$/\1/p')"
if [ -z "$suite" ]; then
  log "$DOCKERFILE: the runtime stage is FROM '$from'; this script rebuilds only debian:<suite>-slim"
  exit 1
fi
relevant="$(printf '%s\n' "$stage" | grep -E '^[[:space:]]*(FROM|RUN|COPY|USER)[[:space:]]')"
key="$( { printf '%s\n' "$relevant"; cat "$0"; } | sha256sum | cut -c1-16)"
image="$STORE/image-$key"
if [ -f "$image/.complete" ]; then
  echo "$image"
  exit 0
fi
apt_install debootstrap bubblewrap
as_root mkdir -p "$STORE"
start=$SECONDS

# The base: what debian:<suite>-slim is made of, from this machine's Debian mirror.
base="$STORE/base-$suite"
if [ ! -f "$base/.complete" ]; then
  mirror="$(derived_source deb "$suite" | sed -n 's/^URIs:[[:space:]]*//p' | awk '{ print $1 }')"
  log "debootstrap --variant=minbase $suite from $mirror (once per cache, a few minutes)"
  as_root rm -rf "$base"
  as_root debootstrap --variant=minbase "$suite" "$base" "$mirror" >&2
  as_root rm -rf "$base/var/cache/apt/archives/"*.deb
  as_root touch "$base/.complete"
fi

# The image: a copy of the base with the stage's RUN instructions replayed, in a clean environment like a
# build's, with the host's resolver for apt (removed afterwards: the runtime provides its own).
log "building the image root filesystem $image from $DOCKERFILE"
as_root rm -rf "$image.tmp"
as_root cp -a "$base" "$image.tmp"
as_root rm -f "$image.tmp/.complete"
as_root cp /etc/resolv.conf "$image.tmp/etc/resolv.conf"
while IFS= read -r run; do
  log "RUN ${run#*RUN }"
  as_root env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    chroot "$image.tmp" /bin/sh -c "${run#*RUN }" >&2
done < <(printf '%s\n' "$relevant" | grep -E '^[[:space:]]*RUN[[:space:]]')
as_root rm -f "$image.tmp/etc/resolv.conf"
as_root touch "$image.tmp/etc/resolv.conf"
# Empty files where the COPY instructions put our binaries: the test binds the built ones over them.
printf '%s\n' "$relevant" | awk '$1 == "COPY" && $2 ~ /^--from=/ { for (i = 3; i < NF; i++) print $i " " $NF }' |
  while read -r src dest; do
    case "$dest" in */) dest="$dest$(basename "$src")" ;; esac
    as_root install -D -m 0755 /dev/null "$image.tmp$dest"
  done
# The chart's mount points (charts/outpost/templates/workload.yaml); a container runtime creates them.
as_root mkdir -p "$image.tmp/etc/outpost/git" "$image.tmp/etc/outpost/status-git" \
  "$image.tmp/var/cache/outpost" "$image.tmp/var/cache/outpost-status"
as_root touch "$image.tmp/.complete"
for old in "$STORE"/image-*; do
  [ "$old" = "$image.tmp" ] || as_root rm -rf "$old"
done
as_root mv "$image.tmp" "$image"
log "image root filesystem ready in $((SECONDS - start)) s: $image"
echo "$image"
