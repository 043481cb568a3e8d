# Stand-ins for the official peer images, for a machine that reaches no registry (compose/local.yaml):
# the binaries scripts/install.sh builds into .tools/bin (this build's context), on the stand-in
# base of scripts/base-image.sh. One target per peer.
ARG PYTHON_IMAGE=shop-python-base:bookworm

FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 peer \
    && useradd --system --uid 10001 --gid peer --no-create-home --home-dir /nonexistent peer

# FerretDB standing in for MongoDB, on SQLite (no PostgreSQL to run beside it), in mongod's data
# folder: compose.yaml's volume keeps it.
FROM base AS ferretdb
RUN mkdir -p /data/db && chown peer:peer /data/db
COPY ferretdb /usr/local/bin/ferretdb
USER 10001:10001
EXPOSE 27017
# The base image's CMD (python3) would become the peer's arguments.
CMD []
ENTRYPOINT ["/usr/local/bin/ferretdb", "--handler=sqlite", "--sqlite-url=file:/data/db/", \
    "--state-dir=/data/db", "--listen-addr=:27017", "--debug-addr=-", "--telemetry=disable", \
    "--log-level=error"]

# At the official image's path, so compose.yaml's command and healthcheck fit both.
FROM base AS mailpit
COPY mailpit /mailpit
USER 10001:10001
EXPOSE 1025 8025
CMD []
ENTRYPOINT ["/mailpit"]

FROM base AS stripe-mock
COPY stripe-mock /stripe-mock
USER 10001:10001
EXPOSE 12111
CMD []
ENTRYPOINT ["/stripe-mock", "-http-port", "12111", "-https-port", "12112"]
