# opskit recipe "gpu": the CUDA + cuDNN runtime image of PyTorch, for GPU hosts.
# Versions are build arguments with pinned defaults (never `latest`):
#   opskit build --profile gpu --build-arg TORCH_VERSION=2.5.1 --build-arg CUDA_VERSION=12.4
# PyTorch comes with the base; the deps image's venv sees it (--system-site-packages), so the
# wheelhouse holds only the project's other requirements.
#
# Layers, from what changes least to what changes most:
#   base -> system packages -> Python dependencies -> opskit runtime -> WORKDIR /app
#        -> COPY ./src -> COPY ./test -> ENTRYPOINT
ARG TORCH_VERSION=2.5.1
ARG CUDA_VERSION=12.4
ARG CUDNN_VERSION=9
ARG BASE_IMAGE=pytorch/pytorch:${TORCH_VERSION}-cuda${CUDA_VERSION}-cudnn${CUDNN_VERSION}-runtime
ARG DEPS_IMAGE=opskit-deps:missing
FROM ${DEPS_IMAGE} AS deps

FROM ${BASE_IMAGE}
ARG SYSTEM_PACKAGES=
RUN if [ -n "$SYSTEM_PACKAGES" ]; then apt-get update \
      && apt-get install -y --no-install-recommends $SYSTEM_PACKAGES \
      && rm -rf /var/lib/apt/lists/*; fi
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app/src:/opt/opskit PYTHONUNBUFFERED=1
COPY .opskit-build/runtime /opt/opskit
WORKDIR /app
COPY ./src /app/src
COPY ./test /app/test
ENTRYPOINT ["python", "-m", "opskit.train"]
