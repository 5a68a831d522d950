# The pdmflow image: one static binary (CGO_ENABLED=0) on an empty base,
# running as an unprivileged user (uid 65532), with the demo photographs
# (for `pdmflow synth`) and CA certificates (for S3 over https).
#
#   docker build -t pdmflow .                  # target release: builds from source in a Go image
#   make compose-local-bin && docker build --target local -t pdmflow:local .
#                                              # target local: copies binaries built on this host,
#                                              # needs no image but scratch (for hosts that cannot pull)
#
# State lives under /var/lib/pdmflow (data, out, nats, s3), owned by the
# image's user so that a fresh named volume mounted there is writable.
# Scratch images have no shell: health checks use `pdmflow health URL`.

ARG GO_VERSION=1.26

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

# release (the default): the same layout, built from source.
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
