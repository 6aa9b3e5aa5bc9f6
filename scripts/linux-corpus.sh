#!/bin/sh
# scripts/linux-corpus.sh [DIR]: Debian's linux-source-6.1, the tree that
# make bench, make eval and make bench-git measure on.  Extracts
# /usr/src/linux-source-6.1.tar.xz once into DIR (default: bench/corpus of
# this checkout) and prints the tree's path, DIR/linux-source-6.1, on
# stdout; everything else goes to stderr.  As root it installs the package
# when the tarball is missing; otherwise it says how and exits 1.
#
# DIR/.linux-source-6.1.ready marks a finished extraction: a later call only
# prints the path, and an interrupted one is redone from scratch.  Callers
# that change the tree (bench/plant.py adds files) keep their own mark of
# that.
set -eu
TARBALL=/usr/src/linux-source-6.1.tar.xz
DIR=${1:-$(cd "$(dirname "$0")/.." && pwd)/bench/corpus}
TREE=$DIR/linux-source-6.1
STAMP=$DIR/.linux-source-6.1.ready

if ! [ -f "$STAMP" ] || ! [ -d "$TREE" ]; then
    if ! [ -f $TARBALL ]; then
        if [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >/dev/null
        else
            echo "linux-corpus: needs Debian's linux-source-6.1:" \
                "sudo apt-get install -y linux-source-6.1" >&2
            exit 1
        fi
    fi
    rm -rf "$TREE" "$STAMP"
    mkdir -p "$DIR"
    echo "linux-corpus: extracting the Linux source into $DIR (once)..." >&2
    tar -xJf $TARBALL -C "$DIR"
    touch "$STAMP"
fi
echo "$TREE"
