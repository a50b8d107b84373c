# BR2K binaries in one image: br2k, br2k-worker, br2k-backupd, br2k-registryd,
# br2k-gateway
# (and br2k-devkafka, for development only). deploy/k8s runs each container
# with its program as `command`.
#
#   docker build -t br2k:0.1.0 .

# ---- build: the -dev packages of README.md, a Release build of the binaries
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libhiredis-dev libcurl4-openssl-dev libssl-dev libjansson-dev \
      libsecp256k1-dev zlib1g-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j"$(nproc)" \
      --target br2k br2k-worker br2k-replay br2k-backupd br2k-registryd br2k-gateway br2k-devkafka \
 && /build/bin/br2k --version

# ---- runtime: only the shared libraries the binaries link against
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libcurl4 libssl3 libjansson4 libsecp256k1-1 zlib1g \
      libmicrohttpd12 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 br2k \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/br2k br2k \
 && mkdir -p /var/lib/br2k/state \
 && chown -R 10001:10001 /var/lib/br2k
COPY --from=build /build/bin/br2k /build/bin/br2k-worker /build/bin/br2k-replay /build/bin/br2k-backupd \
     /build/bin/br2k-registryd /build/bin/br2k-gateway /build/bin/br2k-devkafka /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/br2k
CMD ["br2k", "--help"]
