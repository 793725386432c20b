# poe-gateway: MIT licence. The gateway's image: built with Debian 12's -dev packages, run as a non-root user.
#
#     docker build -t poe-gateway .      (docker-compose.yml does this, and runs it on your tailnet)
#
# The build stage installs exactly the build packages of tools/deps.sh (t/60deploy.test.mjs checks that the lists stay
# equal); the runtime stage has only the libraries the binary links and the CA bundle for Poe's TLS.

FROM debian:bookworm-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config ca-certificates openssl \
        libh2o-dev libuv1-dev libyajl-dev libyaml-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev libsqlite3-dev libhiredis-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src ./src
COPY handlers ./handlers
COPY conf ./conf
COPY dist ./dist
# No tests here (they need Node.js and run in CI); the config path is /etc/poe-gateway, as for a native install.
# The image listens on 0.0.0.0 unless told otherwise, as LiteLLM's does: a LiteLLM compose `command:` that names no
# --host then still reaches the container's published port (README, "Migrating from LiteLLM").
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGW_TESTS=OFF -DPGW_DEFAULT_HOST=0.0.0.0 \
        -DCMAKE_INSTALL_PREFIX=/usr/local -DCMAKE_INSTALL_SYSCONFDIR=/etc \
    && cmake --build build -j"$(nproc)" --target poe-gateway \
    && DESTDIR=/out cmake --install build --strip

FROM debian:bookworm-slim
# libh2o0.13 brings libwslay1 and zlib1g; libssl3 also provides libcrypto.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libh2o0.13 libuv1 libyajl2 libyaml-0-2 libcurl4 libnghttp2-14 libssl3 libsqlite3-0 libhiredis0.14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/poe-gateway --create-home \
        --shell /usr/sbin/nologin poe-gateway
COPY --from=build /out/usr/local/bin/poe-gateway /usr/local/bin/poe-gateway
COPY --from=build /out/etc/poe-gateway/gateway.yaml /etc/poe-gateway/gateway.yaml
USER poe-gateway
WORKDIR /var/lib/poe-gateway
EXPOSE 4000
# The slim image has no curl: the gateway probes its own /health/liveliness (port and TLS from the config).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["poe-gateway", "healthcheck"]
ENTRYPOINT ["poe-gateway"]
# 0.0.0.0 is safe in the compose setup: the gateway shares the Tailscale container's network namespace, so "every
# address" means the tailnet and the port compose publishes on the host's 127.0.0.1. It also means a master key is
# required (LITELLM_MASTER_KEY): the gateway refuses to start on a non-loopback address without one.
CMD ["--config", "/etc/poe-gateway/gateway.yaml", "--host", "0.0.0.0"]
