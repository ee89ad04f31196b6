# syntax=docker/dockerfile:1
# kiln's container image: `kiln` on Debian 12, run as an unprivileged user.
#
#   docker build -t kiln .
#   docker run --rm kiln --help
#
# Two stages: the build stage installs the build dependencies with scripts/install-deps.sh (the
# same Debian packages a developer installs) and builds `kiln` in Release; the runtime stage has
# only the shared libraries `kiln` needs. tests/deploy/check_dockerfile.sh checks that every
# library the built binary needs comes from a package installed below, and that each package
# exists in Debian 12. deploy/ runs this image as `kiln server --executor kubernetes`.

FROM debian:12 AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . /src
WORKDIR /src
RUN cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCH=OFF -DKILN_BUILD_GPU_EXAMPLE=OFF \
 && cmake --build build-rel --target kiln \
 && strip build-rel/kiln

FROM debian:12-slim
# The runtime libraries (readelf -d kiln | grep NEEDED), tzdata for CronWorkflow time zones
# (libdate-tz reads /usr/share/zoneinfo), ca-certificates for API servers and PostgreSQL
# servers whose CA is a public one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        libboost-filesystem1.74.0 \
        libdate-tz3 \
        libgcc-s1 \
        libpq5 \
        libsqlite3-0 \
        libssl3 \
        libstdc++6 \
        libyaml-0-2 \
        tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kiln \
 && useradd --system --uid 10001 --gid kiln --home-dir /var/lib/kiln --create-home --shell /usr/sbin/nologin kiln
COPY --from=build /src/build-rel/kiln /usr/local/bin/kiln
# The numeric id, so that a pod's runAsNonRoot can verify it (deploy/base/deployment.yaml).
USER 10001:10001
ENV KILN_DATA_DIR=/var/lib/kiln
WORKDIR /var/lib/kiln
EXPOSE 2746
ENTRYPOINT ["kiln"]
CMD ["--help"]
