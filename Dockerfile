# One image for the API (`mxconv serve`: gunicorn) and the job workers; docker-compose.yml runs
# both from it. CPU by default. The GPU variant (docker-compose.gpu.yml) builds it with
# --build-arg VARIANT=gpu --build-arg MXNET_PACKAGE=mxnet-cu112==1.9.1. Needs BuildKit (the
# default of `docker compose` v2 and of `docker build` since 23.0; DOCKER_BUILDKIT=1 before) to
# skip the stage not chosen, and for the pip cache.
#
# The base images are build arguments whose defaults are the real images, so a mirror or a
# local stand-in (deploy/base-images.sh) can take their place.
ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
ARG VARIANT=cpu

FROM ${PYTHON_IMAGE} AS base-cpu

# mxnet-cu112 links the CUDA 11.2 runtime libraries: copy them from NVIDIA's image onto the
# same Python base. The driver (libcuda.so.1) comes from the host, by the NVIDIA container
# toolkit, for a container that reserves a GPU.
FROM ${CUDA_IMAGE} AS cuda
FROM ${PYTHON_IMAGE} AS base-gpu
COPY --from=cuda /usr/local/cuda-11.2/targets/x86_64-linux/lib/ /usr/local/cuda/lib64/
COPY --from=cuda /usr/lib/x86_64-linux-gnu/libcudnn* /usr/local/cuda/lib64/
ENV LD_LIBRARY_PATH=/usr/local/cuda/lib64 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM base-${VARIANT}
# Empty: the mxnet wheel pyproject.toml names. Else a replacement, e.g. mxnet-cu112==1.9.1.
ARG MXNET_PACKAGE=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# MXNet's wheel links the system's OpenMP (libgomp) and libquadmath, which -slim lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libquadmath0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The dependencies first, from pyproject.toml alone, so a change to the code rebuilds only the
# layers below. The pip cache is a BuildKit cache mount: warm rebuilds download nothing, and
# no wheel stays in the image.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" >/tmp/requirements.txt \
    && if [ -n "$MXNET_PACKAGE" ]; then sed -i "s/^mxnet==.*/$MXNET_PACKAGE/" /tmp/requirements.txt; fi \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY client client
COPY server server
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps . && rm -rf build client/*.egg-info server/*.egg-info

# Never root. /data holds the embedded SQLite job store when MXCONV_JOBS_URL is not Redis.
RUN useradd --create-home --uid 10001 --user-group mxconv \
    && mkdir -p /data && chown mxconv:mxconv /data
USER mxconv
ENV MXCONV_HOST=0.0.0.0 \
    MXCONV_PORT=8000 \
    MXCONV_DATA_DIR=/data
EXPOSE 8000

# Ready means MXNet computes and the job backend answers (GET /v1/health/ready is 200).
# Docker 20.10 runs the first check one interval after the start, hence a short interval.
# The worker service in docker-compose.yml, which serves no HTTP, turns this off.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health/ready' % os.environ.get('MXCONV_PORT', '8000'), timeout=4)"]

CMD ["mxconv", "serve"]
