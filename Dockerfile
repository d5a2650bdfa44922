# threadkeeper's container image: `threadkeeper run` as a non-root user, every file it writes under /data.
#
# Two stages: the first builds a virtualenv of exactly the pinned versions (constraints.txt); the second holds
# Debian's Python and that virtualenv, and no compiler, pip cache or source tree. The base is Debian's own
# slim image with Debian's Python 3.11; another Debian-based image can be given with --build-arg BASE=...
# (its python3 must be 3.11 or newer and live at /usr/bin/python3, as the virtualenv points there).
#
# The root filesystem can be read-only: the SQLite file, its lock, temp files and any log file live in the one
# volume /data (WORKDIR and TMPDIR). DATABASE_URL is left to the deployment (compose.yaml and the Kubernetes
# manifests say sqlite:////data/threadkeeper.db or a Postgres URL), so that DATABASE_URL_FILE can be used; unset,
# the database is data/threadkeeper.db under WORKDIR, so still in /data. Secrets can come from files:
# DISCORD_TOKEN_FILE=/run/secrets/discord_token and the like (README, "Deploy").
ARG BASE=docker.io/library/debian:bookworm-slim
# For apt in the build only (an ARG does not stay in the image's environment).
ARG DEBIAN_FRONTEND=noninteractive

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md slack-manifest.yml ./
COPY bots ./bots
COPY agent ./agent
COPY storage ./storage
RUN python3 -m venv /opt/threadkeeper \
    && /opt/threadkeeper/bin/pip install --no-cache-dir --no-compile -c constraints.txt . \
    && /opt/threadkeeper/bin/python -m compileall -q /opt/threadkeeper/lib

FROM ${BASE}
ARG DEBIAN_FRONTEND
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 threadkeeper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin threadkeeper \
    && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=build /opt/threadkeeper /opt/threadkeeper
ENV PATH=/opt/threadkeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    TMPDIR=/data \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    METRICS_PORT=9090 \
    METRICS_HOST=0.0.0.0
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
# 3000: Slack's HTTP mode (/slack/events); 9090: /metrics, /healthz, /readyz.
EXPOSE 3000 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['METRICS_PORT'] + '/healthz', timeout=4)"]
CMD ["threadkeeper", "run"]
