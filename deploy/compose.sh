#!/usr/bin/env bash
# `make compose-up` and `make compose-down`: the compose topology on this machine.
#
#   deploy/compose.sh up      daemon (when none answers), base images, build, start, wait
#   deploy/compose.sh down    stop and remove the containers and network (the volume stays),
#                             then the daemon, if deploy/dockerd.sh started it and it is idle
#
# and the steps one at a time: daemon, images, build, start (up -d, then wait), wait.
# MXCONV_SCALE_API (2) and MXCONV_SCALE_WORKER (1) size it; MXCONV_PUBLISH (127.0.0.1:8000)
# is where the balancer listens; MXCONV_HEALTHY_TIMEOUT (300 s) bounds the wait.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/env.sh

say() { echo "compose: $*" >&2; }

daemon() {
  if [ "$DOCKER_HOST" = "$MXCONV_OWN_DOCKER_HOST" ]; then
    deploy/dockerd.sh start
  fi
}

wait_healthy() { # every container running, and healthy where it has a health check
  local deadline=$((SECONDS + ${MXCONV_HEALTHY_TIMEOUT:-300})) t0=$SECONDS pending
  while :; do
    pending=()
    for id in $(compose ps -q); do
      read -r name status health < <(docker inspect -f \
        '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
      if [ "$status" != running ] || { [ "$health" != healthy ] && [ "$health" != none ]; }; then
        pending+=("${name#/}:$status/$health")
      fi
    done
    if [ ${#pending[@]} -eq 0 ]; then
      say "every container is up and healthy ($((SECONDS - t0)) s)"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "not healthy in time: ${pending[*]}"
      compose ps >&2
      compose logs --tail 20 >&2
      return 1
    fi
    sleep 1
  done
}

timed() { # step name, command...
  local t0=$SECONDS
  "${@:2}"
  say "$1: $((SECONDS - t0)) s"
}

start() {
  compose up -d --no-build --scale "api=${MXCONV_SCALE_API:-2}" --scale "worker=${MXCONV_SCALE_WORKER:-1}"
  wait_healthy
  say "balancer on http://${MXCONV_PUBLISH:-127.0.0.1:8000}"
}

down() {
  if ! timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    say "no Docker daemon answers on ${DOCKER_HOST:-the default socket}: nothing to take down"
    return 0
  fi
  compose down --remove-orphans
  # Our own daemon goes too, once nothing else runs on it (its image cache stays on disk).
  if [ "$DOCKER_HOST" = "$MXCONV_OWN_DOCKER_HOST" ] && deploy/dockerd.sh status >/dev/null 2>&1; then
    if [ -z "$(docker ps -q)" ]; then
      deploy/dockerd.sh stop
    else
      say "containers still run on $DOCKER_HOST; leaving its daemon up"
    fi
  fi
}

case "${1:-}" in
  up)
    timed daemon daemon
    timed "base images" deploy/base-images.sh
    timed build compose build
    timed start start
    ;;
  down) down ;;
  daemon) daemon ;;
  images) deploy/base-images.sh ;;
  build) compose build ;;
  start) start ;;
  wait) wait_healthy ;;
  *) echo "usage: $0 up|down|daemon|images|build|start|wait" >&2; exit 2 ;;
esac
