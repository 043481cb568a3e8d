# A stand-in for the official OpenSearch image, for a machine that reaches no registry
# (compose/local.yaml): the project's single-node server (tools/opensearch, whose jars
# scripts/install-opensearch.sh puts in .tools/opensearch/lib, this build's context) on Debian's
# Java 17, on the stand-in base of scripts/base-image.sh.
ARG PYTHON_IMAGE=shop-python-base:bookworm

FROM ${PYTHON_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 search \
    && useradd --system --uid 10001 --gid search --no-create-home --home-dir /nonexistent search \
    && mkdir -p /usr/share/opensearch/data && chown -R search:search /usr/share/opensearch
COPY *.jar /opt/opensearch/lib/
USER 10001:10001
EXPOSE 9200
# Its home and data where the official image keeps them (compose.yaml's volume). Settings as
# the node's key=value arguments: every interface of the container, and the main
# response's version as Elasticsearch 7.10 clients (Filebeat) expect it.
# The base image's CMD (python3) would become the node's arguments.
CMD []
ENTRYPOINT ["java", "-Xms512m", "-Xmx512m", "-XX:+UseSerialGC", "-Dlog4j2.disable.jmx=true", \
    "-cp", "/opt/opensearch/lib/*", "shop.SearchNode", "/usr/share/opensearch", "9200", \
    "network.host=0.0.0.0", "compatibility.override_main_response_version=true"]
