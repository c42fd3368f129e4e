# A stand-in for the redis image where no image registry can be reached: Debian's
# redis-server on the local python stand-in, with the official image's entrypoint, data
# directory and port. deploy/base-images.sh builds it and tags it with the real image's name.
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
