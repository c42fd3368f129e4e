#!/bin/sh
# The official redis image's entrypoint, with setpriv (util-linux) in place of gosu.
set -e
# `docker run redis --appendonly yes` and `docker run redis my.conf` mean redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
	# The official build turns protected mode off: the container's network is the boundary.
	set -- "$@" --protected-mode no
fi
um="$(umask)"
if [ "$um" = 0022 ]; then
	umask 0077
fi
exec "$@"
