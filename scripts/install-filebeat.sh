#!/usr/bin/env bash
# Build Filebeat 7.10.2 OSS (tools/filebeat, a wrapper Go module) into .tools/bin/filebeat: the
# last Filebeat that ships to OpenSearch (7.13 and later refuse it). About a minute or two cold;
# fast and harmless when built: it rebuilds only when tools/filebeat changed. Prints the binary's
# path on standard output (its one line there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/tools/filebeat"
BINARY="$ROOT/.tools/bin/filebeat"
STAMP="$ROOT/.tools/filebeat.source-sha256"
export PATH="$ROOT/.tools/bin:$PATH:/usr/local/go/bin"
# The module folder may be a copy without git: stamping VCS info would fail there.
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

source_hash() {
    (cd "$MODULE" && cat go.mod go.sum tools.go) | sha256sum | cut -d' ' -f1
}

if [ -x "$BINARY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(source_hash)" ]; then
    echo "$BINARY"
    exit 0
fi
if ! command -v go >/dev/null; then
    echo "go is required to build Filebeat (install Go 1.22 or newer)" >&2
    exit 1
fi
printf '==> %s\n' "building Filebeat 7.10.2 OSS (tools/filebeat -> .tools/bin/filebeat, a minute or two)" >&2
mkdir -p "$(dirname "$BINARY")"
# Into a temporary name first: an interrupted build must not leave a binary the stamp vouches for.
(cd "$MODULE" && go build -o "$BINARY.partial" github.com/elastic/beats/v7/filebeat) >&2
mv "$BINARY.partial" "$BINARY"
source_hash >"$STAMP"
echo "$BINARY"
