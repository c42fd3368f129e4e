# Sourced by deploy/*.sh: the docker CLI, BuildKit, and which daemon to talk to.
#
# Debian's docker CLI (20.10, BuildKit built in) goes first on PATH: a newer CLI elsewhere on
# PATH may fail with "buildx component is missing" once BuildKit is on, and bookworm has no
# buildx. BuildKit skips the Dockerfile stages not chosen (the GPU variant's CUDA image) and
# gives RUN its cache mounts; docker-compose 1.29 uses it only through the CLI.
export PATH="/usr/bin:/usr/sbin:$PATH"
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1

# The daemon: DOCKER_HOST when set, else the system's when it answers, else mxconv's own
# (deploy/dockerd.sh starts it, and `make compose-down` stops it again).
MXCONV_OWN_DOCKER_HOST="unix://${MXCONV_DOCKERD_RUN:-/run/mxconv-dockerd}/docker.sock"
if [ -z "${DOCKER_HOST:-}" ]; then
  if timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    :
  else
    export DOCKER_HOST="$MXCONV_OWN_DOCKER_HOST"
  fi
fi

compose() {
  if command -v docker-compose >/dev/null; then
    docker-compose "$@"
  else
    docker compose "$@"
  fi
}
