#!/usr/bin/env bash
# Install everything the local stack and the tests need; fast and harmless when all is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
FERRETDB_VERSION="v1.24.2"
# The newest the Go module proxy serves (`go list -m -versions github.com/stripe/stripe-mock`).
STRIPE_MOCK_VERSION="v0.203.0"
# Mailpit: an SMTP server whose API reads back what arrived (its web UI's assets are not in a
# source build; SMTP and the API are).
MAILPIT_VERSION="v1.27.11"
HELM_VERSION="v4.3.2"
KUBECONFORM_VERSION="v0.8.0"
KUBE_SCORE_VERSION="v1.20.0"
ACTIONLINT_VERSION="v1.7.12"
TOXIPROXY_VERSION="v2.5.0"
export PATH="$TOOLS/bin:$PATH:/usr/local/go/bin"
# Builds from a copied module folder are not git checkouts; stamping VCS info would fail there.
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$TOOLS/bin"

log() { printf '==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v nats-server >/dev/null || missing+=(nats-server)
    command -v wrk >/dev/null || missing+=(wrk)
    # FerretDB's storage. The stack and the tests run clusters of their own, never the system one.
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
    # The browser that tests /api/docs, and npm for Swagger UI and the browser driver (tools/web).
    # A Google Chrome already there serves too (GitHub's Ubuntu runners have one, and no Debian chromium).
    command -v chromium >/dev/null || command -v google-chrome >/dev/null || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    # Images: Debian's Docker engine, and debootstrap for the stand-in base (scripts/base-image.sh).
    [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
    # Compose: Debian's docker-compose 1.29 (seconds to install; it honours depends_on conditions
    # and builds through the docker CLI with BuildKit). Compose v2 would be a 9-minute Go build.
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    # Monitoring: Prometheus with promtool, Alertmanager with amtool, and the exporter that turns
    # nginx's stub_status into metrics (tests/test_monitoring.py runs all three).
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
    command -v prometheus-nginx-exporter >/dev/null || missing+=(prometheus-nginx-exporter)
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    log "apt-get install ${missing[*]}"
    # Installing PostgreSQL would create and start a system cluster on port 5432: not wanted.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.d/shop.conf >/dev/null
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_uv() {
    if command -v uv >/dev/null; then
        return
    fi
    log "pip install uv (into .tools)"
    # --target keeps uv inside the project and sidesteps PEP 668 on a system Python.
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$TOOLS/uv" uv
    ln -sf "$TOOLS/uv/bin/uv" "$TOOLS/bin/uv"
}

sync_python() {
    if [ -f "$ROOT/uv.lock" ]; then
        (cd "$ROOT" && uv sync --frozen --quiet)
    else
        (cd "$ROOT" && uv sync --quiet)
    fi
}

require_go() {
    if ! command -v go >/dev/null; then
        echo "go is required to build FerretDB and stripe-mock (install Go 1.22 or newer)" >&2
        exit 1
    fi
}

# Swagger UI (served by the gateway at /api/docs) and playwright-core (which drives chromium in its
# test), at the versions and hashes of tools/web/package-lock.json, into .tools/web/node_modules.
install_web_tools() {
    local dest="$TOOLS/web"
    if cmp -s "$ROOT/tools/web/package-lock.json" "$dest/package-lock.json" &&
        [ -d "$dest/node_modules/swagger-ui-dist" ] && [ -d "$dest/node_modules/playwright-core" ]; then
        return
    fi
    log "npm ci (Swagger UI, playwright-core) into .tools/web"
    mkdir -p "$dest"
    cp "$ROOT/tools/web/package.json" "$ROOT/tools/web/package-lock.json" "$dest/"
    # No install scripts: swagger-ui-dist's only dependency runs one to send usage analytics.
    (cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}

build_ferretdb() {
    if [ -x "$TOOLS/bin/ferretdb" ]; then
        return
    fi
    require_go
    log "building FerretDB $FERRETDB_VERSION (about a minute)"
    local module src="$TOOLS/src/ferretdb"
    module="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
    rm -rf "$src"
    mkdir -p "$TOOLS/src"
    cp -r "$module" "$src"
    chmod -R u+w "$src"
    # The module zip lacks the generated version file, and FerretDB panics at start without it
    # (upstream issues 2982 and 4889); a tools-module `go get -tool` build has the same problem.
    echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
    (cd "$src" && go build -o "$TOOLS/bin/ferretdb" ./cmd/ferretdb)
    rm -rf "$src"
    rmdir "$TOOLS/src" 2>/dev/null || true
}

# Stripe's API for the tests and the local stack; its spec and fixtures are compiled in.
# go_tool BINARY PACKAGE@VERSION: `go install` it into .tools/bin unless it is there.
go_tool() {
    if [ -x "$TOOLS/bin/$1" ]; then
        return
    fi
    require_go
    log "building $2"
    GOBIN="$TOOLS/bin" go install "$2"
}

# Toxiproxy, for the TCP faults of load runs (load-tests/faults.py: products slowed by 2 s). Its
# package installs as `server`: renamed to say what it serves.
install_toxiproxy() {
    if [ -x "$TOOLS/bin/toxiproxy-server" ]; then
        return
    fi
    require_go
    log "building github.com/Shopify/toxiproxy/v2 $TOXIPROXY_VERSION"
    local built
    built=$(mktemp -d)
    GOBIN="$built" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
    mv "$built/server" "$TOOLS/bin/toxiproxy-server"
    rmdir "$built"
}

# The Twilio API peer: Stoplight Prism serving Twilio's own OpenAPI description (shipped in
# @twilio/cli-core), which refuses a request the real API would refuse (a missing `To`: 422), at
# the versions and hashes of tools/twilio/package-lock.json; `shop-twilio-peer PORT` starts it.
install_twilio_peer() {
    local dest="$TOOLS/twilio"
    if ! cmp -s "$ROOT/tools/twilio/package-lock.json" "$dest/package-lock.json" ||
        [ ! -x "$dest/node_modules/.bin/prism" ]; then
        log "npm ci (Prism, Twilio's OpenAPI description) into .tools/twilio"
        mkdir -p "$dest"
        cp "$ROOT/tools/twilio/package.json" "$ROOT/tools/twilio/package-lock.json" "$dest/"
        (cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
    cat >"$TOOLS/bin/shop-twilio-peer" <<SCRIPT
#!/usr/bin/env bash
# The Twilio API (2010-04-01: Messages) as Prism serves it from Twilio's description, on 127.0.0.1:\$1.
exec "$dest/node_modules/.bin/prism" mock -h 127.0.0.1 -p "\$1" \\
    "$dest/node_modules/@twilio/cli-core/src/services/twilio-api/twilio_api_v2010.json"
SCRIPT
    chmod +x "$TOOLS/bin/shop-twilio-peer"
}

install_system_packages
start_docker() {
    # Debian's CLI (a docker elsewhere on PATH may lack BuildKit) talking to a daemon, started
    # here when none answers (no systemd in containers and CI sandboxes).
    if /usr/bin/docker info >/dev/null 2>&1; then
        return
    fi
    log "starting dockerd"
    as_root sh -c 'nohup /usr/sbin/dockerd >/var/log/shop-dockerd.log 2>&1 &'
    for _ in $(seq 60); do
        /usr/bin/docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    echo "dockerd did not answer; see /var/log/shop-dockerd.log" >&2
    exit 1
}

install_uv
sync_python
start_docker
install_web_tools
build_ferretdb
go_tool stripe-mock "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
# Mail for the tests and the local stack.
go_tool mailpit "github.com/axllent/mailpit@$MAILPIT_VERSION"
# The Helm chart's checks (tests/test_chart.py).
go_tool helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
go_tool kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
# The GitHub workflows' linter (tests/test_workflows.py).
go_tool actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
install_toxiproxy
install_twilio_peer
bash "$ROOT/scripts/install-opensearch.sh" >/dev/null
bash "$ROOT/scripts/install-filebeat.sh" >/dev/null
log "tools ready"
