#!/usr/bin/env bash
# Installs the Debian packages the test suite runs (real iproute2, ping,
# strace, dnsmasq, Open vSwitch, dockerd, DHCP clients...): .ci/apt-packages.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Packages like docker.io and openvswitch-switch would start their daemons on
# this machine (docker0, iptables...): forbid service starts while installing.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
# shellcheck disable=SC2046
$sudo apt-get install -y -qq --no-install-recommends $(grep -v '^\s*#' .ci/apt-packages.txt) >/dev/null
