#!/usr/bin/env bash
# Installs every Debian package difftx needs (build, tests, reference checks, report rendering).
# Idempotent: packages already present are skipped by apt. Run as root (or with sudo available).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libsentencepiece-dev sentencepiece
  libxxhash-dev zlib1g-dev libzstd-dev
  clang libclang-rt-14-dev libomp-dev clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev curl
  python3 python3-torch python3-numpy
  libopenmpi-dev openmpi-bin
  chromium
)
missing=()
# npm ships inside some nodejs builds (e.g. NodeSource); add Debian's npm only when absent.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
