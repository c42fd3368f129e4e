# A stand-in for the nginx image where no image registry can be reached: Debian's nginx on the
# local python stand-in, laid out like the official image: servers in /etc/nginx/conf.d, logs
# to stdout and stderr, in the foreground, stopped gracefully by SIGQUIT; wget for health checks.
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx wget \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
