#!/bin/sh
# Installs the Debian packages keyhog builds and tests with.  As root it runs
# apt-get; otherwise it prints the exact command and fails.
set -eu
PKGS="build-essential pkg-config libvectorscan-dev libpcre2-dev libgit2-dev
libarchive-dev libcurl4-openssl-dev libssl-dev libcmocka-dev python3
python3-jsonschema git ripgrep zip unzip xz-utils zstd bzip2 p7zip-full
clang libclang-rt-14-dev openssl chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "setup: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "setup: missing packages; run:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
