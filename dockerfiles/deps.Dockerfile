# The Python dependencies of every opskit recipe, as an image of their own.
#
# Context: a wheelhouse (the wheels `pip download` fetched on the build host, plus
# requirements.txt), nothing else. The wheels are installed with no network
# (pip install --no-index) into a virtual environment at /opt/venv in an "install" stage; the
# result is FROM scratch and holds /opt/venv alone: no wheel bytes, no base layers.
# opskit tags it opskit-deps:<hash of requirements, base image, python> and reuses it while
# that hash holds; the recipes take it with COPY --from=deps /opt/venv /opt/venv.
ARG BASE_IMAGE=opskit-base:bookworm
FROM ${BASE_IMAGE} AS install
ARG PYTHON=python3
ARG VENV_FLAGS=
COPY . /tmp/wheelhouse
RUN ${PYTHON} -m venv ${VENV_FLAGS} /opt/venv \
 && /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt

FROM scratch
COPY --from=install /opt/venv /opt/venv
