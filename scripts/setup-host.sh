#!/usr/bin/env bash
# Make this machine ready for opskit's tests and demo: the Debian packages they need
# (Docker engine, debootstrap, OpenSSH client, zstd, Chromium), then a running Docker engine.
# Idempotent: skips what is already there. Needs root (or sudo) only when something is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# debootstrap checks the mirror's Release signature with Debian's keyring (a Recommends of
# debootstrap, left out by --no-install-recommends): the bookworm and trixie bases need it.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v make >/dev/null 2>&1 || need+=(make)
# BusyBox: the checks are tested against its ps and df (small images and Alpine hosts have them)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
# The browser tests of HTML reports open them in a real headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# `make setup` makes a virtual environment: Debian's python3 needs python3-venv for that.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)

if ((${#need[@]})); then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "missing packages: ${need[*]} (run as root or install them)" >&2
            exit 1
        fi
    fi
    echo "installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

"$here/start-dockerd.sh"
