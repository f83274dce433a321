#!/usr/bin/env bash
# Installs the Debian packages `make lab` and `make test` need, only those missing (a no-op
# once they are all there). Run as root.
set -euo pipefail

# What the tests and the lab use besides Rust and Go:
#   make                   the entry point
#   gcc, libc6-dev         C parts of dependencies (ring)
#   iproute2, procps       network namespaces and veths (ip), sysctl, kill
#   bird2, frr, gobgpd     the BGP daemons the speaker's BGP code is tested against, and the
#                          lab's node and router daemons
#   arping, tcpdump, curl  the lab's clients and captures
#   iputils-ping           the L2 responder tests' clients (ping makes a kernel resolve)
#   openssl                the lab's certificates
packages=(make gcc libc6-dev iproute2 procps bird2 frr gobgpd arping tcpdump curl iputils-ping openssl)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-packages: missing ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
