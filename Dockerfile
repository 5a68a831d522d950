# The pdmflow image: one static binary (CGO_ENABLED=0) on an empty base,
# running as an unprivileged user (uid 65532), with the demo photographs
# (for `pdmflow synth`) and CA certificates (for S3 over https). And the
# compose file's S3 server: MinIO built from source at a pinned commit
# (MINIO_VERSION, a Go module version) on the same empty base, with pdmflow
# beside it for the health check.
#
#   docker build -t pdmflow .                  # target release: builds from source in a Go image
#   docker build --target minio -t pdmflow-minio .   # MinIO, built from source in a Go image
#   make compose-local-bin && docker build --target local -t pdmflow:local .
#                                              # targets local and minio-local: copy binaries built
#                                              # on this host, need no image but scratch (for hosts
#                                              # that cannot pull)
#
# State lives under /var/lib/pdmflow (data, out, nats, s3), owned by the
# image's user so that a fresh named volume mounted there is writable.
# Scratch images have no shell: health checks use `pdmflow health URL`.

ARG GO_VERSION=1.26
# MinIO's last commit (2026-02-12) as the Go module proxy serves it; the
# repository publishes no semver tags, so a pseudo-version pins it.
# docs/decisions.md says why this one and why building it is fine.
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# local: the binaries and the root tree come from bin/docker, made by
# deploy/compose/local-bin.sh. It is the first stage so that the classic
# builder stops here with --target local and never pulls the Go image.
FROM scratch AS local
COPY bin/docker/rootfs/etc/ /etc/
COPY --chown=65532:65532 bin/docker/rootfs/var/ /var/
COPY --chown=65532:65532 bin/docker/rootfs/tmp/ /tmp/
COPY bin/docker/pdmflow /usr/local/bin/pdmflow
COPY data/photos/ /usr/share/pdmflow/photos/
USER 65532:65532
ENV PATH=/usr/local/bin HOME=/var/lib/pdmflow
WORKDIR /var/lib/pdmflow
EXPOSE 4222 8080 8222 9090
ENTRYPOINT ["/usr/local/bin/pdmflow"]
CMD ["help"]

# minio-local: MinIO for the compose file, from bin/docker too.
FROM scratch AS minio-local
COPY bin/docker/rootfs/etc/ /etc/
COPY --chown=65532:65532 bin/docker/rootfs/var/ /var/
COPY --chown=65532:65532 bin/docker/rootfs/tmp/ /tmp/
COPY bin/docker/pdmflow /usr/local/bin/pdmflow
COPY bin/docker/minio /usr/local/bin/minio
USER 65532:65532
ENV PATH=/usr/local/bin HOME=/var/lib/pdmflow MINIO_BROWSER=off MINIO_UPDATE=off
WORKDIR /var/lib/pdmflow
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/minio"]
CMD ["server", "/var/lib/pdmflow/s3", "--address", ":9000"]

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pdmflow ./cmd/pdmflow && \
	mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/var/lib/pdmflow/data /rootfs/var/lib/pdmflow/out \
		/rootfs/var/lib/pdmflow/nats /rootfs/var/lib/pdmflow/s3 && \
	chmod 1777 /rootfs/tmp && \
	echo "pdmflow:x:65532:65532:pdmflow:/var/lib/pdmflow:/sbin/nologin" >/rootfs/etc/passwd && \
	echo "pdmflow:x:65532:" >/rootfs/etc/group && \
	cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/

FROM golang:${GO_VERSION} AS minio-build
ARG MINIO_VERSION
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" github.com/minio/minio@${MINIO_VERSION}

# minio: MinIO for the compose file, built from source.
FROM scratch AS minio
COPY --from=build /rootfs/etc/ /etc/
COPY --from=build --chown=65532:65532 /rootfs/var/ /var/
COPY --from=build --chown=65532:65532 /rootfs/tmp/ /tmp/
COPY --from=build /out/pdmflow /usr/local/bin/pdmflow
COPY --from=minio-build /out/minio /usr/local/bin/minio
USER 65532:65532
ENV PATH=/usr/local/bin HOME=/var/lib/pdmflow MINIO_BROWSER=off MINIO_UPDATE=off
WORKDIR /var/lib/pdmflow
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/minio"]
CMD ["server", "/var/lib/pdmflow/s3", "--address", ":9000"]

# release (the default, so the last stage): the same layout, built from source.
FROM scratch AS release
COPY --from=build /rootfs/etc/ /etc/
COPY --from=build --chown=65532:65532 /rootfs/var/ /var/
COPY --from=build --chown=65532:65532 /rootfs/tmp/ /tmp/
COPY --from=build /out/pdmflow /usr/local/bin/pdmflow
COPY data/photos/ /usr/share/pdmflow/photos/
USER 65532:65532
ENV PATH=/usr/local/bin HOME=/var/lib/pdmflow
WORKDIR /var/lib/pdmflow
EXPOSE 4222 8080 8222 9090
ENTRYPOINT ["/usr/local/bin/pdmflow"]
CMD ["help"]
