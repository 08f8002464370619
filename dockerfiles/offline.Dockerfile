# opskit recipe "offline": on the image made by `opskit base bootstrap` (Debian + Python 3 via
# debootstrap), for machines that can pull nothing: air-gapped clusters, and CI here.
#
# Layers, from what changes least to what changes most:
#   base -> system packages -> Python dependencies -> opskit runtime -> WORKDIR /app
#        -> COPY ./src -> COPY ./test -> ENTRYPOINT
# A one-line change in src/ rebuilds only the last few (kilobyte) layers.
# `opskit build --profile offline` passes BASE_IMAGE and DEPS_IMAGE (see deps.Dockerfile).
ARG BASE_IMAGE=opskit-base:bookworm
ARG DEPS_IMAGE=opskit-deps:missing
FROM ${DEPS_IMAGE} AS deps

FROM ${BASE_IMAGE}
# System packages: none by default (an air-gapped host may have no apt mirror);
# --build-arg SYSTEM_PACKAGES="git ..." where one is reachable.
ARG SYSTEM_PACKAGES=
RUN if [ -n "$SYSTEM_PACKAGES" ]; then apt-get update \
      && apt-get install -y --no-install-recommends $SYSTEM_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; fi
# Python dependencies: the virtual environment of the deps image (no wheels, no pip cache).
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app/src:/opt/opskit PYTHONUNBUFFERED=1
# opskit's training runtime (opskit.train, opskit.models: torch + stdlib only).
COPY .opskit-build/runtime /opt/opskit
WORKDIR /app
COPY ./src /app/src
COPY ./test /app/test
ENTRYPOINT ["python", "-m", "opskit.train"]
