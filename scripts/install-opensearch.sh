#!/usr/bin/env bash
# Build the single-node OpenSearch 2.19 server (tools/opensearch) into .tools/opensearch/lib,
# and write its launcher .tools/bin/shop-search-node (STATE_DIR HTTP_PORT [key=value ...]).
# Fast and harmless when it is already built: it rebuilds only when the jars are missing or
# tools/opensearch changed. Prints the classpath on standard output (its one line there):
#   java -Xms512m -Xmx512m -XX:+UseSerialGC -cp "$(scripts/install-opensearch.sh)" shop.SearchNode STATE_DIR PORT
# Needs Java 17 and Maven (installs Debian's when missing); jars come from Maven Central into ~/.m2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/tools/opensearch"
OUT="$ROOT/.tools/opensearch"
LIB="$OUT/lib"
STAMP="$LIB/.source-sha256"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# What the build depends on: the pom and everything under src/.
source_hash() {
    (cd "$MODULE" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
        sha256sum | cut -d' ' -f1
}

built() {
    [ -f "$LIB/shop-search-node.jar" ] &&
        compgen -G "$LIB/opensearch-2.19.*.jar" >/dev/null &&
        [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(source_hash)" ]
}

require_toolchain() {
    local missing=()
    command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || missing+=(maven)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    local feature
    feature="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
    if [ "${feature:-0}" -lt 17 ]; then
        echo "OpenSearch 2.19 needs Java 17 or newer; java is ${feature:-unknown}" >&2
        exit 1
    fi
}

build() {
    require_toolchain
    log "building the OpenSearch node (tools/opensearch -> .tools/opensearch; first time downloads ~80 MB into ~/.m2)"
    rm -rf "$OUT"
    mkdir -p "$OUT"
    local mvn_log="$OUT/build.log"
    if ! mvn -B -q -f "$MODULE/pom.xml" package \
        -Dsearch.build.dir="$OUT/build" -Dsearch.lib.dir="$LIB" >"$mvn_log" 2>&1; then
        cat "$mvn_log" >&2
        echo "building tools/opensearch failed (log: $mvn_log)" >&2
        exit 1
    fi
    rm -rf "$OUT/build"
    source_hash >"$STAMP"
}

# The launcher, so the node starts like the other tools in .tools/bin.
# JVM options come from SEARCH_JAVA_OPTS (default: a 512 MB heap and the serial GC, for 2 cores).
write_launcher() {
    local launcher="$ROOT/.tools/bin/shop-search-node" tmp
    mkdir -p "$ROOT/.tools/bin"
    tmp="$(mktemp "$launcher.XXXXXX")"
    # shellcheck disable=SC2016,SC1003 # the launcher's own variables and line continuations
    {
        echo '#!/bin/sh'
        echo '# Written by scripts/install-opensearch.sh. Usage: shop-search-node STATE_DIR HTTP_PORT [key=value ...]'
        echo 'exec java ${SEARCH_JAVA_OPTS:--Xms512m -Xmx512m -XX:+UseSerialGC} \'
        echo '    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \'
        echo "    -cp '$LIB/*' shop.SearchNode \"\$@\""
    } >"$tmp"
    chmod 755 "$tmp"
    mv "$tmp" "$launcher"
}

built || build
write_launcher
printf '%s/*\n' "$LIB"
