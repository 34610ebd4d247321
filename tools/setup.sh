#!/usr/bin/env bash
# Install the build and test dependencies from Debian's packages.
# Usage: tools/setup.sh [--with-bench]   (--with-bench adds python3-torch for the PyTorch peer)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libyaml-dev libopenblas-openmp-dev libcmocka-dev
      zlib1g-dev libpng-dev libcairo2-dev graphviz clang libclang-rt-14-dev
      libopenmpi-dev openmpi-bin)
[[ "${1:-}" == "--with-bench" ]] && pkgs+=(python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: dependencies present"
