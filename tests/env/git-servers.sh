#!/usr/bin/env bash
# Installs what the test harness needs to run real Git servers on loopback: nginx + fcgiwrap in front of
# `git http-backend` (smart HTTP, basic auth, TLS), and sshd for Git over SSH. The harness starts and stops
# them itself on free ports; nothing here starts a system service. Safe to re-run.
source "$(dirname "$0")/lib.sh"

apt_install nginx-light fcgiwrap apache2-utils openssh-server openssh-client openssl git
# Debian may start nginx and sshd on install; the tests never use those instances.
if command -v systemctl >/dev/null 2>&1; then
  as_root systemctl stop nginx >/dev/null 2>&1 || true
fi
for bin in nginx fcgiwrap sshd htpasswd ssh-keygen openssl; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || { log "missing $bin after install"; exit 1; }
done
log "Git server tools ready (git http-backend at $(git --exec-path)/git-http-backend)"
