#!/bin/sh
# The compose gateway's entrypoint: nginx with nginx.conf beside this file, reloaded whenever the
# addresses behind a service's name change. nginx resolves an upstream's name to all its
# addresses only when it starts or reloads, so without this a `--scale orders=3` would not be
# seen, and a recreated instance's new address would never be.
set -eu

HERE="$(dirname "$0")"
CONFIG="$HERE/nginx.conf"
STATE=/run/gateway
INTERVAL="${GATEWAY_RESOLVE_INTERVAL:-5}"

# The names of the upstream servers (`server orders:8000 ...;`), and their current addresses.
names="$(sed -n 's/^ *server \([a-z][a-z0-9-]*\):[0-9]* .*/\1/p' "$CONFIG" | sort -u)"
addresses() {
    for name in $names; do
        echo "$name $(getent ahostsv4 "$name" | awk '{print $1}' | sort -u | tr '\n' ' ')"
    done
}

mkdir -p "$STATE/tmp"
nginx -c "$CONFIG" -e stderr &
nginx_pid=$!
trap 'kill -QUIT "$nginx_pid" 2>/dev/null; wait "$nginx_pid"; exit 0' TERM INT QUIT

known="$(addresses)"
while kill -0 "$nginx_pid" 2>/dev/null; do
    # In the background, so that a stop signal is handled at once.
    sleep "$INTERVAL" &
    wait $! || true
    now="$(addresses)"
    if [ "$now" != "$known" ]; then
        echo "gateway: the services' addresses changed; reloading nginx" >&2
        # A failed reload (a name that resolves to nothing) keeps the running config; retried.
        if nginx -c "$CONFIG" -e stderr -s reload; then
            known="$now"
        fi
    fi
done
wait "$nginx_pid"
