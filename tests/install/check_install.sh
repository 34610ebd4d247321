#!/usr/bin/env bash
# The `install` test: install a build into a scratch prefix and use it the way
# a user would. Usage: check_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
#   1. cmake --install BUILD_DIR --prefix SCRATCH_DIR/prefix; check the layout
#      (op.h and oplist.h must not be installed, every header compiles alone);
#   2. build examples/train_ring.c with pkg-config against libdfrun.so, and
#      against libdfrun.a (pkg-config --static), and run both;
#   3. build examples/ with CMake (find_package(dfrun)) and run it.
# Environment (set by CTest): CC, the build's compiler; DFRUN_SANITIZE=ON when
# the build (so the installed library) uses ASan+UBSan: the example then does too.
set -euo pipefail
trap 'echo "check_install: FAILED (line $LINENO: $BASH_COMMAND)" >&2' ERR

if [[ $# -ne 3 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR SCRATCH_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
scratch=$3
cc=${CC:-cc}
san=()
case "${DFRUN_SANITIZE:-OFF}" in
  ON | on | 1 | TRUE | true | YES | yes)
    # shellcheck disable=SC2054 # the comma belongs to the flag
    san=(-fsanitize=address,undefined -fno-omit-frame-pointer)
    ;;
esac

die() {
  trap - ERR
  echo "check_install: FAILED: $*" >&2
  exit 1
}
step() { echo "== $*"; }
# run a command quietly; on failure show its output
quiet() {
  local log="$scratch/last.log"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "command failed: $*"
  fi
}

rm -rf "$scratch"
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
prefix=$scratch/prefix
graph=$src/graphs/toy_ring.yaml

step "cmake --install $build --prefix $prefix"
quiet cmake --install "$build" --prefix "$prefix"

step "installed layout"
for f in lib/libdfrun.a lib/libdfrun.so bin/dfrun include/dfrun/dfrun.h include/dfrun/train.h \
  include/dfrun/sample.h include/dfrun/version.h lib/pkgconfig/dfrun.pc \
  lib/cmake/dfrun/dfrunConfig.cmake lib/cmake/dfrun/dfrunConfigVersion.cmake \
  lib/cmake/dfrun/dfrunTargets.cmake; do
  [[ -e $prefix/$f ]] || die "$prefix/$f was not installed"
done
for f in op.h oplist.h; do
  [[ ! -e $prefix/include/dfrun/$f ]] || die "include/dfrun/$f is kernel-level and must not be installed"
done
if grep -nE '#[[:space:]]*include[[:space:]]*[<"]dfrun/(op|oplist)\.h' "$prefix"/include/dfrun/*.h; then
  die "an installed header includes op.h or oplist.h (not installed)"
fi
for h in "$prefix"/include/dfrun/*.h; do
  echo "#include \"dfrun/$(basename "$h")\"" >"$scratch/header.c"
  "$cc" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" "$scratch/header.c" ||
    die "installed header $(basename "$h") does not compile on its own"
done

step "installed dfrun CLI runs"
quiet "$prefix/bin/dfrun" check "$graph" --quiet
# shellcheck disable=SC2016 # a literal $ORIGIN
readelf -d "$prefix/bin/dfrun" | grep 'RUNPATH.*\$ORIGIN/\.\./lib' >/dev/null ||
  die "bin/dfrun has no \$ORIGIN/../lib in its RUNPATH"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
version=$(pkg-config --modversion dfrun) || die "pkg-config cannot read $PKG_CONFIG_PATH/dfrun.pc"
grep -q "DF_VERSION \"$version\"" "$prefix/include/dfrun/version.h" ||
  die "dfrun.pc version $version differs from version.h"
echo "dfrun $version: $(pkg-config --cflags --libs dfrun)"

step "pkg-config, shared: cc train_ring.c \$(pkg-config --cflags --libs dfrun)"
mkdir -p "$scratch/pc"
# shellcheck disable=SC2046
"$cc" ${san[@]+"${san[@]}"} -O2 -Wall -Wextra -Werror -o "$scratch/pc/train_ring" \
  "$src/examples/train_ring.c" $(pkg-config --cflags --libs dfrun) -lm ||
  die "examples/train_ring.c does not build with pkg-config against the installed libdfrun.so"
readelf -d "$scratch/pc/train_ring" | grep 'NEEDED.*libdfrun\.so' >/dev/null ||
  die "the pkg-config build did not link libdfrun.so"
LD_LIBRARY_PATH=$prefix/lib ldd "$scratch/pc/train_ring" | grep "libdfrun\.so.* => $prefix/lib/" >/dev/null ||
  die "the pkg-config build does not load $prefix/lib/libdfrun.so"
LD_LIBRARY_PATH=$prefix/lib "$scratch/pc/train_ring" "$graph" "$scratch/pc/run" ||
  die "train_ring (pkg-config, shared) failed"

step "pkg-config, static: cc train_ring.c \$(pkg-config --static --cflags --libs dfrun)"
# The linker takes libdfrun.a when it is the libdfrun it finds first.
mkdir -p "$scratch/static/lib"
ln -s "$prefix/lib/libdfrun.a" "$scratch/static/lib/libdfrun.a"
# shellcheck disable=SC2046
"$cc" ${san[@]+"${san[@]}"} -O2 -Wall -Wextra -Werror -o "$scratch/static/train_ring" \
  "$src/examples/train_ring.c" -L"$scratch/static/lib" $(pkg-config --static --cflags --libs dfrun) -lm ||
  die "examples/train_ring.c does not link libdfrun.a with pkg-config --static (Libs.private incomplete?)"
if readelf -d "$scratch/static/train_ring" | grep 'NEEDED.*libdfrun' >/dev/null; then
  die "the static build links libdfrun.so"
fi
"$scratch/static/train_ring" "$graph" "$scratch/static/run" || die "train_ring (pkg-config, static) failed"

step "CMake: find_package(dfrun) in examples/"
cflags=${san[*]+"${san[*]}"}
quiet cmake -S "$src/examples" -B "$scratch/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="$cflags"
found=$(sed -n 's/^dfrun_DIR:PATH=//p' "$scratch/cmake/CMakeCache.txt")
[[ $found == "$prefix/lib/cmake/dfrun" ]] || die "find_package(dfrun) found '$found', not the installed one"
quiet cmake --build "$scratch/cmake"
# no LD_LIBRARY_PATH: CMake gives the build the installed libdir as RPATH
ldd "$scratch/cmake/train_ring" | grep "libdfrun\.so.* => $prefix/lib/" >/dev/null ||
  die "the CMake build does not load $prefix/lib/libdfrun.so"
"$scratch/cmake/train_ring" "$graph" "$scratch/cmake/run" || die "train_ring (CMake) failed"

echo "check_install: OK"
