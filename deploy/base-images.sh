#!/usr/bin/env bash
# The base images docker-compose.yml names, on the current daemon: each is used as it is when
# present, pulled when a registry answers, and otherwise made here as a local stand-in tagged
# with the real name (so the compose file and Dockerfile stay unchanged):
#
# - python:3.11-slim: Debian bookworm (whose Python is 3.11), minbase, by mmdebstrap, with
#   python3, pip, venv and the host's extra CA certificates (outbound TLS from builds needs
#   them; they stay in this base, never in the project's layers);
# - redis:7-alpine: Debian's redis-server on that base, with the official entrypoint;
# - nginx:1.27-alpine: Debian's nginx on that base, laid out like the official image.
#
# The names are the compose file's defaults (tests/test_deploy.py keeps them equal) or the
# MXCONV_*_IMAGE variables. MXCONV_STANDINS=always skips the pull; =never fails without it.
# Needs: docker (the CLI on PATH, DOCKER_HOST set), and mmdebstrap for the python stand-in.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

python_image=${MXCONV_PYTHON_IMAGE:-python:3.11-slim}
redis_image=${MXCONV_REDIS_IMAGE:-redis:7-alpine}
nginx_image=${MXCONV_NGINX_IMAGE:-nginx:1.27-alpine}
standins=${MXCONV_STANDINS:-auto}
label=org.mxconv.stand-in

say() { echo "base-images: $*" >&2; }

present() { docker image inspect "$1" >/dev/null 2>&1; }

pulled() { # a registry answered and gave us the image
  [ "$standins" != always ] || return 1
  timeout 300 docker pull --quiet "$1" >/dev/null 2>"$tmp/pull.err" && return 0
  [ "$standins" != never ] || { say "cannot pull $1: $(cat "$tmp/pull.err")"; exit 1; }
  say "cannot pull $1 ($(tail -n 1 "$tmp/pull.err")); making a stand-in"
  return 1
}

python_standin() {
  command -v mmdebstrap >/dev/null || { say "the python stand-in needs mmdebstrap: apt-get install mmdebstrap"; exit 1; }
  # On a bookworm host, its own apt sources (mirrors, proxies); elsewhere mmdebstrap's default.
  local mirror=()
  if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
      [ -s "$f" ] && mirror+=("$f")
    done
  fi
  local certs=/usr/local/share/ca-certificates
  # Slim as Debian's own images are: no docs, manuals or translations; apt keeps no caches
  # (its package cache alone would add 80 MB to every image that runs apt-get update).
  mmdebstrap --quiet --variant=minbase --format=tar \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Languages "none"' \
    --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""' \
    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; }' \
    --customize-hook="if [ -d $certs ]; then cp -r $certs/. \"\$1$certs/\"; fi" \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    bookworm "$tmp/rootfs.tar" "${mirror[@]}"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $label=mmdebstrap-bookworm" \
    --change 'CMD ["python3"]' \
    "$tmp/rootfs.tar" "$python_image" >/dev/null
}

dockerfile_standin() { # name, Dockerfile in standins/
  docker build --quiet --build-arg "BASE=$python_image" --label "$label=debian-bookworm" \
    -t "$1" -f "$here/standins/$2" "$here/standins" >/dev/null
}

ensure() { # name, how to make its stand-in
  local t0=$SECONDS
  if present "$1"; then
    say "$1: present"
    return 0
  fi
  if pulled "$1"; then
    say "$1: pulled in $((SECONDS - t0)) s"
    return 0
  fi
  "${@:2}"
  say "$1: stand-in made in $((SECONDS - t0)) s ($(docker image inspect -f '{{.Size}}' "$1" | numfmt --to=iec))"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ensure "$python_image" python_standin
ensure "$redis_image" dockerfile_standin "$redis_image" redis.Dockerfile
ensure "$nginx_image" dockerfile_standin "$nginx_image" nginx.Dockerfile
