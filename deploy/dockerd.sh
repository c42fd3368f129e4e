#!/usr/bin/env bash
# A Docker daemon of mxconv's own, for machines where none runs: `start` (a no-op when it
# already answers), `stop` (only the daemon this script started, by its PID) and `status`.
#
# It keeps to its own directories and socket, so it never meets a system daemon: data (the
# image cache, kept across runs) in MXCONV_DOCKERD_ROOT, sockets and PIDs in MXCONV_DOCKERD_RUN.
# Bridge addresses are explicit (MXCONV_DOCKERD_BIP, MXCONV_DOCKERD_POOL) and checked against
# the host's routes first; ports publish on 127.0.0.1 only. With --iptables=false the daemon
# leaves the host's firewall alone: the one NAT rule that builds need to reach package
# registries is added here and removed on stop, and ip_forward is put back as it was.
set -euo pipefail

root=${MXCONV_DOCKERD_ROOT:-/var/lib/mxconv-dockerd}
run=${MXCONV_DOCKERD_RUN:-/run/mxconv-dockerd}
bip=${MXCONV_DOCKERD_BIP:-10.213.0.1/24}
pool=${MXCONV_DOCKERD_POOL:-10.213.128.0/17}
sock="$run/docker.sock"
pidfile="$run/dockerd.pid"
export DOCKER_HOST="unix://$sock"
export PATH="/usr/bin:/usr/sbin:$PATH"  # Debian's docker CLI before any other

say() { echo "dockerd.sh: $*" >&2; }

answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The NAT rule for containers' outbound traffic (the daemon's own is off with --iptables=false).
nat_rule() { echo "POSTROUTING -s $1 ! -d $1 -m comment --comment mxconv-dockerd -j MASQUERADE"; }

ranges() { # the bridge's network and the pool, as networks
  python3 -c 'import ipaddress, sys; print(ipaddress.ip_interface(sys.argv[1]).network, sys.argv[2])' "$bip" "$pool"
}

check_clash() { # refuse addresses that overlap a route the host already has
  ip -j route show table all | python3 -c '
import ipaddress, json, sys
ours = [ipaddress.ip_network(n) for n in sys.argv[1:]]
for r in json.load(sys.stdin):
    dst = r.get("dst", "")
    if dst in ("", "default") or ":" in dst or r.get("type") in ("local", "broadcast"):
        continue
    net = ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)
    if any(net.overlaps(o) for o in ours) and r.get("dev") != "docker0":
        sys.exit("%s (dev %s) overlaps %s: set MXCONV_DOCKERD_BIP and MXCONV_DOCKERD_POOL to free ranges"
                 % (net, r.get("dev"), ", ".join(map(str, ours))))
' $(ranges)
}

start() {
  if answers; then
    say "a daemon already answers on $DOCKER_HOST"
    return 0
  fi
  [ "$(id -u)" = 0 ] || { say "starting dockerd needs root; run Docker yourself and set DOCKER_HOST"; exit 1; }
  command -v dockerd >/dev/null || { say "no dockerd: apt-get install docker.io"; exit 1; }
  check_clash
  mkdir -p "$root" "$run"
  echo '{}' >"$run/daemon.json"  # not /etc/docker/daemon.json: a system daemon's settings
  ip link show docker0 >/dev/null 2>&1 || touch "$run/created-docker0"
  [ -f "$run/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward >"$run/ip_forward"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  for net in $(ranges); do
    # shellcheck disable=SC2046
    iptables -t nat -C $(nat_rule "$net") 2>/dev/null || iptables -t nat -A $(nat_rule "$net")
  done
  local t0=$SECONDS
  dockerd --config-file "$run/daemon.json" --data-root "$root/data" --exec-root "$run/exec" \
    --host "$DOCKER_HOST" --pidfile "$pidfile" --bip "$bip" \
    --default-address-pool "base=$pool,size=24" --ip 127.0.0.1 \
    --iptables=false --ip6tables=false --ip-masq=false \
    >>"$run/dockerd.log" 2>&1 &
  for _ in $(seq 120); do
    if answers; then
      say "started (pid $(cat "$pidfile"), $((SECONDS - t0)) s); export DOCKER_HOST=$DOCKER_HOST"
      return 0
    fi
    kill -0 $! 2>/dev/null || break
    sleep 0.5
  done
  say "dockerd did not answer; the end of $run/dockerd.log:"
  tail -n 20 "$run/dockerd.log" >&2
  exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    # Only the dockerd this script started: its command line names our exec root.
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--exec-root $run/exec"; then
      kill -TERM "$pid"
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$pid" 2>/dev/null; then say "dockerd $pid did not stop in 30 s; killing it"; kill -KILL "$pid"; fi
      say "stopped (pid $pid)"
    fi
    rm -f "$pidfile"
  fi
  for net in $(ranges); do
    # shellcheck disable=SC2046
    while iptables -t nat -C $(nat_rule "$net") 2>/dev/null; do iptables -t nat -D $(nat_rule "$net"); done
  done
  if [ -f "$run/created-docker0" ]; then
    ip link delete docker0 2>/dev/null || true
    rm -f "$run/created-docker0"
  fi
  if [ -f "$run/ip_forward" ]; then
    cat "$run/ip_forward" >/proc/sys/net/ipv4/ip_forward
    rm -f "$run/ip_forward"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "answers on $DOCKER_HOST"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
