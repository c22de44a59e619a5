#!/usr/bin/env bash
# Install what tokend needs to build and test on Debian 12 (bookworm) or later.
#
#  1. Debian packages (apt-get; as root, or through sudo).
#  2. libjwt 3 (>= 3.2). An installed one is used when pkg-config finds it
#     (PKG_CONFIG_PATH is honoured: point it at a libjwt installed elsewhere).
#     Otherwise (Debian 12 and 13 ship only libjwt 1.10) the newest `libjwt3`
#     source that Debian unstable or experimental offers is built into
#     .deps/libjwt (project-local). The source comes through a private apt
#     configuration whose deb-src entries are derived from the mirror this
#     machine already uses; apt-get source checks the files against the
#     checksums of the signed Sources index (no hash is pinned here). A version
#     below 3.2 or of a major version other than 3 is never taken; the choice
#     is scripts/libjwt-choose.sh (tested offline by tests/unit/libjwt_choose.sh).
#     TOKEND_LIBJWT_VERSION=3.3.3-1 asks for one Debian version (the newest is
#     taken, with a warning, when it is no longer offered).
#
#  3. The npm packages the build embeds: Swagger UI for the console's API page
#     (server/console, pinned by its package-lock.json; `npm ci --ignore-scripts`).
#  4. Unless --build-only: the browser the console's tests drive (Debian's chromium,
#     chromium-driver, python3-selenium) and axe-core for their accessibility checks
#     (tests/interop, `npm ci`).
#
# A second run is a no-op in seconds. Prints the PKG_CONFIG_PATH to use on the
# last line when run with --print-pkg-config-path. --build-only (docker/Dockerfile):
# only what building and the unit tests need.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"
JWT_PREFIX="$DEPS/libjwt"
# shellcheck source=libjwt-choose.sh
. "$ROOT/scripts/libjwt-choose.sh"

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libevent-dev libssl-dev libjansson-dev libpq-dev zlib1g-dev liburing-dev
  postgresql-15 postgresql-client-15 pgbouncer
  python3 python3-pytest python3-pytest-xdist python3-requests python3-jwt python3-cryptography
  python3-requests-oauthlib python3-authlib python3-psycopg2 python3-yaml
  wrk curl ca-certificates xz-utils dpkg-dev openssl
)
# node + npm for tests/interop (openid-client, jose): Debian's packages (Debian 12: nodejs 18,
# npm 9) unless node is already installed otherwise (a NodeSource nodejs bundles npm and
# conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm  >/dev/null 2>&1 || PACKAGES+=(npm)

PRINT_PKG_CONFIG_PATH=0
BUILD_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --print-pkg-config-path) PRINT_PKG_CONFIG_PATH=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) printf 'install-deps: unknown option %s (--build-only, --print-pkg-config-path)\n' "$arg" >&2; exit 2 ;;
  esac
done
# The console's browser tests (tests/e2e/test_console_*.py): headless Chromium via Selenium;
# strace for test_fastlane.py's system-call count.
[ "$BUILD_ONLY" -eq 1 ] || PACKAGES+=(chromium chromium-driver python3-selenium strace)

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(); fi
fi

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then
    log "Debian packages: all present"
    return
  fi
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    die "missing packages ($(echo $missing)); run as root or install sudo"
  fi
  log "installing: $(echo $missing)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# The version of the libjwt pkg-config finds, or "": the one PKG_CONFIG_PATH
# or the system gives when it is usable (3.x, >= 3.2), else the project-local
# build's (scripts/build.sh takes the same order).
installed_libjwt() {
  local v
  v=$(pkg-config --modversion libjwt 2>/dev/null || true)
  if [ -n "$v" ] && choose --installed "$v" >/dev/null 2>&1; then
    echo "$v"
    return
  fi
  if [ -f "$JWT_PREFIX/lib/pkgconfig/libjwt.pc" ]; then
    PKG_CONFIG_PATH="$JWT_PREFIX/lib/pkgconfig" pkg-config --modversion libjwt 2>/dev/null || true
  else
    echo "$v"
  fi
}

# Where that libjwt is (for the log line).
libjwt_dir() {
  if pkg-config --atleast-version=3.2 libjwt 2>/dev/null && choose --installed "$(pkg-config --modversion libjwt)" >/dev/null 2>&1; then
    pkg-config --variable=libdir libjwt
  else
    echo "$JWT_PREFIX/lib"
  fi
}

# The mirror this machine already uses for Debian, read from its apt sources
# (deb822 .sources files or the one-line format). No host name is written here.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # Pick the URIs of a stanza whose Suites name a Debian release (not -security).
    uri=$(awk '
      /^[[:space:]]*$/ { if (u != "" && s ~ /(bookworm|trixie|forky|sid|stable|testing|unstable)( |$)/ && u !~ /security/) { print u; exit } u=""; s=""; next }
      /^URIs:/ { u=$2 }
      /^Suites:/ { $1=""; s=$0 }
      END { if (u != "" && s ~ /(bookworm|trixie|forky|sid|stable|testing|unstable)( |$)/ && u !~ /security/) print u }
    ' "$f" | head -n1)
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } } }' "$f" | head -n1)
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  return 1
}

build_libjwt() {
  local mirror work aptdir opts candidates decision deb_version tarball src
  mirror=$(debian_mirror) || die "no Debian mirror found in /etc/apt/sources*; cannot fetch libjwt3 source. Install libjwt 3 (>= 3.2), point PKG_CONFIG_PATH at it and re-run."
  work="$DEPS/src"
  aptdir="$work/apt"
  rm -rf "$work"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$JWT_PREFIX"
  {
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} unstable main"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} experimental main"
  } >"$aptdir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -qq)
  log "reading the libjwt3 sources Debian unstable and experimental offer (${mirror%/})"
  (cd "$work" && apt-get "${opts[@]}" update >/dev/null 2>&1) \
    || die "apt-get update of the private deb-src list failed (network or mirror?)"
  candidates=$(cd "$work" && apt-cache "${opts[@]}" showsrc libjwt3 2>/dev/null \
                 | awk '$1 == "Package:" { p = $2 } $1 == "Version:" && p == "libjwt3" { print $2 }' | sort -u)
  decision=$(choose --installed "$1" --pinned "${TOKEND_LIBJWT_VERSION:-}" $candidates) || exit 1
  deb_version=${decision#build }
  log "building libjwt3 $deb_version (offered: $(echo $candidates))"
  # apt-get source checks every file against the signed Sources index.
  (cd "$work" && apt-get "${opts[@]}" source --download-only "libjwt3=$deb_version" >/dev/null 2>&1) \
    || die "apt-get source libjwt3=$deb_version failed (download, or a checksum that does not match the signed index)"
  tarball=$(ls "$work"/libjwt3_"$(upstream "$deb_version")".orig.tar.* 2>/dev/null | head -n1)
  [ -n "$tarball" ] && [ -f "$tarball" ] || die "no orig tarball of libjwt3 $deb_version in $work after download"
  src="$work/libjwt"
  mkdir -p "$src"
  tar -xf "$tarball" -C "$src" --strip-components=1
  log "building libjwt $(upstream "$deb_version") into $JWT_PREFIX"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DWITH_GNUTLS=OFF -DWITH_MBEDTLS=OFF -DWITH_LIBCURL=OFF -DWITH_TESTS=OFF \
    -DCMAKE_INSTALL_PREFIX="$JWT_PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >"$work/configure.log" 2>&1 \
    || { tail -20 "$work/configure.log" >&2; die "libjwt configure failed"; }
  cmake --build "$work/build" -j"$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log" >&2; die "libjwt build failed"; }
  cmake --install "$work/build" >"$work/install.log" 2>&1 || die "libjwt install failed"
  rm -rf "$work"
  case $(choose --installed "$(installed_libjwt)" 2>/dev/null) in
    installed*) ;;
    *) die "libjwt was built but pkg-config finds no libjwt 3 (>= 3.2) in $JWT_PREFIX" ;;
  esac
}

# `npm ci` in $1 unless its node_modules already matches its package-lock.json.
# --ignore-scripts: nothing a package ships runs here (swagger-ui-dist's dependency
# would otherwise run a telemetry install script).
npm_ci() {
  local dir=$1
  [ -f "$dir/package-lock.json" ] || die "$dir/package-lock.json is missing"
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    log "npm packages of ${dir#"$ROOT"/}: present"
    return
  fi
  log "npm ci in ${dir#"$ROOT"/}"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) || die "npm ci in $dir failed (network or registry?)"
}

install_packages
npm_ci "$ROOT/server/console"
[ "$BUILD_ONLY" -eq 1 ] || npm_ci "$ROOT/tests/interop"
have=$(installed_libjwt)
if decision=$(choose --installed "$have" 2>/dev/null) && [ "${decision%% *}" = installed ]; then
  log "libjwt: $have found ($(libjwt_dir))"
else
  build_libjwt "$have"
fi
if [ "$PRINT_PKG_CONFIG_PATH" -eq 1 ]; then
  echo "$JWT_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi
