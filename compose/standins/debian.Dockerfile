# Stand-ins for the official NATS and nginx images, for a machine that reaches no registry
# (compose/local.yaml): Debian's packages on the stand-in base of scripts/base-image.sh.
ARG PYTHON_IMAGE=shop-python-base:bookworm

FROM ${PYTHON_IMAGE} AS nats
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nats-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown nobody:nogroup /data
USER 65534:65534
EXPOSE 4222 8222
ENTRYPOINT ["/usr/sbin/nats-server"]

FROM ${PYTHON_IMAGE} AS gateway
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 8080
