#!/usr/bin/env bash
# Installs every Debian 12 package magi-serve needs to build, test and run.
# Idempotent: a second run installs nothing new. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config ccache git clang libclang-rt-dev
  # model runtime: LibTorch (CPU, with c10d/Gloo) and a fast system BLAS
  libtorch-dev libgloo-dev libopenblas0-openmp
  # server: gRPC, Protobuf, Abseil, SQLite, metrics, JSON
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libsqlite3-dev prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev
  # OpenAI-compatible HTTP/WebSocket API: Boost.Beast + Asio (header-only); OpenSSL for HTTPS/WSS
  libboost-dev libssl-dev
  # media: FFmpeg libraries (libx264 inside libavcodec) and the ffprobe CLI for tests
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libavfilter-dev ffmpeg
  # text encoder tokenizer
  libsentencepiece-dev sentencepiece libicu-dev
  # tests: GoogleTest, Python gRPC client, Prometheus server, linters, the OpenAI SDK test (node, curl)
  nodejs curl
  # the realtime viewer's e2e test drives headless Chromium (puppeteer-core from npm)
  chromium
  # e2e TLS test: certificates generated at test time
  openssl
  libgtest-dev libgmock-dev python3-grpcio python3-grpc-tools python3-protobuf prometheus yamllint
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# LibTorch reaches BLAS/LAPACK through these alternatives. The OpenMP build of OpenBLAS shares
# ATen's OpenMP pool; the pthread build starts its own threads, which oversubscribe the cores
# against ATen's (measured: DiT forward 11.9 s -> 9.6 s on the medium benchmark, 2 cores).
select_openblas_openmp() {
  local dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
  [ -e "$dir/libblas.so.3" ] || return 0
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$dir/libblas.so.3" >/dev/null
  $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu "$dir/liblapack.so.3" >/dev/null
}

# npm comes with NodeSource's nodejs; Debian's own nodejs needs the separate npm package (which
# conflicts with NodeSource's), so it is added only when no npm is on the PATH.
install_npm_if_missing() {
  command -v npm >/dev/null 2>&1 && return 0
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends npm
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  select_openblas_openmp
  install_npm_if_missing
  exit 0
fi
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
select_openblas_openmp
install_npm_if_missing
