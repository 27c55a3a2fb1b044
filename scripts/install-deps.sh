#!/usr/bin/env bash
# Install every build and test dependency of the project from Debian packages.
#
# Idempotent and quiet: when every package is already present it prints nothing and exits 0.
# Used by both README commands (scripts/run-demo.sh, scripts/run-tests.sh) and therefore by CI.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries the code links against
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libjemalloc-dev liblz4-dev libxxhash-dev
  liburing-dev libmicrohttpd-dev
  # TLS test certificates
  openssl
  # unit tests and benchmarks
  libcmocka-dev libbenchmark-dev
  # python integration tests: Debian's pytest and grpcio under /usr/bin/python3
  python3-pytest python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq >/dev/null
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
