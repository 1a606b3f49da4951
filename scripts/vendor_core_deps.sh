#!/usr/bin/env bash
# Copies what the core-only build needs besides LibTorch and the CUDA toolkit from this Debian
# machine into third_party/, so the tree can be carried to a box without apt (docs/gpu.md):
#   third_party/absl            Abseil 20220623: headers, static libraries, CMake config
#                               rewritten from the shared to the static libraries
#   third_party/nlohmann_json   nlohmann-json headers (header-only)
#   third_party/googletest      GoogleTest sources (Debian ships them; built on the box)
# About 10 MB. The static Abseil is built with g++ 12 and the C++11 string ABI
# (_GLIBCXX_USE_CXX11_ABI=1): it links with LibTorch builds that use the same ABI (PyTorch
# wheels from 2.7 on, the cxx11-abi libtorch archives). For an old-ABI wheel pass an Abseil
# source tree instead (-DMAGI_ABSL_SOURCE_DIR, or MAGI_ABSL_SOURCE_DIR for gpu_check.sh).
# With ABSL_SOURCE=/path/to/abseil-cpp (a 20220623 source tree) it is copied too, as
# third_party/abseil-cpp; gpu_check.sh builds it when the wheel uses the old ABI.
#   scripts/vendor_core_deps.sh [OUT_DIR]      (default ./third_party; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$PWD/third_party}"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdir=/usr/lib/$multiarch
for need in /usr/include/absl "$libdir/cmake/absl/abslTargets.cmake" /usr/include/nlohmann/json.hpp; do
  if [ ! -e "$need" ]; then
    echo "vendor_core_deps: $need is missing: apt-get install libabsl-dev nlohmann-json3-dev" >&2
    exit 1
  fi
done
ls "$libdir"/libabsl_*.a >/dev/null 2>&1 || { echo "vendor_core_deps: no static libabsl_*.a in $libdir" >&2; exit 1; }

rm -rf "$out/absl" "$out/nlohmann_json" "$out/googletest"
# Abseil, in the same layout as /usr so the config's relative _IMPORT_PREFIX still works.
mkdir -p "$out/absl/include" "$out/absl/lib/$multiarch/cmake"
cp -r /usr/include/absl "$out/absl/include/"
cp "$libdir"/libabsl_*.a "$out/absl/lib/$multiarch/"
cp -r "$libdir/cmake/absl" "$out/absl/lib/$multiarch/cmake/"
cfg="$out/absl/lib/$multiarch/cmake/absl"
# The packaged config imports the shared libraries: point it at the static ones instead.
sed -i -e 's/ SHARED IMPORTED)/ STATIC IMPORTED)/' "$cfg/abslTargets.cmake"
sed -i -E -e 's#(libabsl_[a-z0-9_]+)\.so\.[0-9.]+#\1.a#g' -e '/IMPORTED_SONAME_NONE/d' "$cfg"/abslTargets-*.cmake
# Sanity: every library the config names exists here.
missing=0
for f in $(grep -o 'libabsl_[a-z0-9_]*\.a' "$cfg"/abslTargets-*.cmake | sort -u); do
  [ -e "$out/absl/lib/$multiarch/$f" ] || { echo "vendor_core_deps: $f named by the config is missing" >&2; missing=1; }
done
[ $missing -eq 0 ] || exit 1

mkdir -p "$out/nlohmann_json/include"
cp -r /usr/include/nlohmann "$out/nlohmann_json/include/"

if [ -e /usr/src/googletest/CMakeLists.txt ]; then
  cp -r /usr/src/googletest "$out/googletest"
else
  echo "vendor_core_deps: no /usr/src/googletest (libgtest-dev): the box will build no test suite"
fi
if [ -n "${ABSL_SOURCE:-}" ]; then
  [ -f "$ABSL_SOURCE/absl/status/status.h" ] || { echo "vendor_core_deps: $ABSL_SOURCE is no abseil-cpp tree" >&2; exit 1; }
  rm -rf "$out/abseil-cpp"
  mkdir -p "$out/abseil-cpp"
  (cd "$ABSL_SOURCE" && tar --exclude=.git -cf - .) | (cd "$out/abseil-cpp" && tar -xf -)
fi
echo "vendor_core_deps: $(du -sh "$out" | cut -f1) in $out: absl ($(ls "$out/absl/lib/$multiarch"/*.a | wc -l) static" \
     "libraries), nlohmann-json headers, googletest $( [ -d "$out/googletest" ] && echo sources || echo absent)"
