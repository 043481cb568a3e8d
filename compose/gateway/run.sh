#!/bin/sh
# The gateway's entrypoint in compose and Kubernetes: nginx with nginx.conf beside this file, each
# upstream's `server NAME:PORT ...;` written out as one line per address NAME has now, and nginx
# reloaded whenever those addresses change. nginx itself resolves a name only when it starts or
# reloads, and refuses to start when one does not resolve; so a `--scale orders=3` or a new pod is
# seen within seconds, a gone one is dropped, and a service with no instance yet (starting, or
# disabled) answers 502 for its own routes instead of keeping the whole gateway down.
set -eu

HERE="$(dirname "$0")"
CONFIG="$HERE/nginx.conf"
STATE=/run/gateway
RENDERED="$STATE/nginx.conf"
INTERVAL="${GATEWAY_RESOLVE_INTERVAL:-5}"

# The names of the upstream servers (`server orders:8000 ...;`), and their current addresses.
names="$(sed -n 's/^ *server \([a-z][a-z0-9-]*\):[0-9]* .*/\1/p' "$CONFIG" | sort -u)"
addresses() {
    for name in $names; do
        echo "$name $(getent ahostsv4 "$name" | awk '{print $1}' | sort -u | tr '\n' ' ')"
    done
}

# nginx.conf with each upstream server line written out for the addresses given on stdin.
render() {
    awk '
        NR == FNR { name = $1; $1 = ""; found[name] = $0; next }
        /^ *server [a-z][a-z0-9-]*:[0-9]+[ ;]/ {
            indent = $0; sub(/server.*/, "", indent)
            split($2, target, ":"); sub(/;$/, "", target[2])
            rest = $0; sub(/^ *server [^ ;]+/, "", rest)
            count = split(found[target[1]], ips, " ")
            if (count == 0) print indent "server 127.0.0.1:1 down;  # " target[1] ": no instance yet"
            for (i = 1; i <= count; i++) print indent "server " ips[i] ":" target[2] rest
            next
        }
        { print }
    ' - "$CONFIG" > "$RENDERED.next"
    mv "$RENDERED.next" "$RENDERED"
}

# The names with no address now, one per line in $STATE/missing (a startup probe may wait for
# the ones it needs: the Helm chart's waits for every enabled service).
note_missing() {
    awk 'NF == 1 { print $1 }' > "$STATE/missing.next"
    mv "$STATE/missing.next" "$STATE/missing"
}

mkdir -p "$STATE/tmp"
known="$(addresses)"
echo "$known" | render
echo "$known" | note_missing
nginx -c "$RENDERED" -e stderr &
nginx_pid=$!
trap 'kill -QUIT "$nginx_pid" 2>/dev/null; wait "$nginx_pid"; exit 0' TERM INT QUIT

while kill -0 "$nginx_pid" 2>/dev/null; do
    # In the background, so that a stop signal is handled at once.
    sleep "$INTERVAL" &
    wait $! || true
    now="$(addresses)"
    if [ "$now" != "$known" ]; then
        echo "gateway: the services' addresses changed; reloading nginx" >&2
        echo "$now" | render
        # A failed reload keeps the running config; it is tried again at the next change.
        if nginx -c "$RENDERED" -e stderr -s reload; then
            known="$now"
            echo "$now" | note_missing
        fi
    fi
done
wait "$nginx_pid"
