# opskit recipe "cpu": python:3.11-slim with a CPU build of PyTorch, for CPU hosts and CI
# machines that can reach Docker Hub.
#
# Layers, from what changes least to what changes most:
#   base -> system packages -> Python dependencies -> opskit runtime -> WORKDIR /app
#        -> COPY ./src -> COPY ./test -> ENTRYPOINT
# `opskit build --profile cpu` passes BASE_IMAGE and DEPS_IMAGE (see deps.Dockerfile).
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG DEPS_IMAGE=opskit-deps:missing
FROM ${DEPS_IMAGE} AS deps

FROM ${BASE_IMAGE}
# System packages: --build-arg SYSTEM_PACKAGES="git libsndfile1 ..." (apt, in one layer).
ARG SYSTEM_PACKAGES=
RUN if [ -n "$SYSTEM_PACKAGES" ]; then apt-get update \
      && apt-get install -y --no-install-recommends $SYSTEM_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; fi
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app/src:/opt/opskit PYTHONUNBUFFERED=1
COPY .opskit-build/runtime /opt/opskit
WORKDIR /app
COPY ./src /app/src
COPY ./test /app/test
ENTRYPOINT ["python", "-m", "opskit.train"]
