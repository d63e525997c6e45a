# syntax=docker/dockerfile:1

# The runtime image of function-model-rollout.
#
# Both stages are Debian bookworm with Debian's own python3 (3.11), so the venv
# built in the first stage runs unchanged in the second: /venv/bin/python is a
# symlink to /usr/bin/python3, which is the same interpreter in both stages.
# scripts/build-package.sh assembles the same image (same base, same /venv,
# same user, same config) without a Docker daemon.
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build

RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY function/ function/

# Build the wheel (pip fetches the hatchling build backend into an isolated
# build environment), install it with its runtime dependencies only (no
# [dev] extra), then drop the installers: the runtime image runs, it does not
# install.
RUN /venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /venv/bin/pip install --no-cache-dir /wheels/*.whl \
 && /venv/bin/pip uninstall --yes pip setuptools

FROM ${DEBIAN_IMAGE} AS runtime

RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot

COPY --from=build /venv /venv

ENV PATH=/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1

USER 65532:65532
# Crossplane calls the function over gRPC (TLS) on this port.
EXPOSE 9443
ENTRYPOINT ["/venv/bin/function"]
