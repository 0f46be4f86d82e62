#!/usr/bin/env bash
# GnuPG (gpg, gpg-agent) from Debian, for the signature verification tests (tests/e2e/verify.rs): they make
# real OpenPGP keys and signed commits with it, and `git verify-commit` judges beside the agent. ssh-keygen
# (the SSH signatures) comes with openssh-client, which git-servers.sh installs. Safe to re-run.
source "$(dirname "$0")/lib.sh"

if command -v gpg >/dev/null 2>&1 && command -v gpg-agent >/dev/null 2>&1; then
  log "GnuPG ready ($(gpg --version | head -n1))"
  exit 0
fi
apt_install gnupg gpg-agent
log "GnuPG ready ($(gpg --version | head -n1))"
