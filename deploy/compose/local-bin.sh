#!/usr/bin/env bash
# Builds what the FROM-scratch images of docker-compose.local.yml copy, into
# bin/docker (gitignored): static (CGO_ENABLED=0) binaries of pdmflow and
# MinIO (the pinned MINIO_VERSION of the Dockerfile, with `go install` from
# the Go module proxy: the same build as the Dockerfile's minio target), and
# the root tree (state directories owned by the image user, /tmp,
# /etc/passwd naming that user, CA certificates). Needs Go; pulls no image.
#
#   deploy/compose/local-bin.sh      (make compose-local-bin)
#
# Environment: GO (default go), VERSION (stamped into the binary).
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
MINIO_VERSION=$(sed -n 's/^ARG MINIO_VERSION=//p' Dockerfile)
[ -n "$MINIO_VERSION" ] || { echo "local-bin: no ARG MINIO_VERSION in the Dockerfile" >&2; exit 1; }
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
out=bin/docker
mkdir -p "$out"
rm -f "$out/versitygw" # the S3 server of earlier local images

echo "local-bin: pdmflow (static) -> $out/pdmflow"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$out/pdmflow.new" ./cmd/pdmflow
mv -f "$out/pdmflow.new" "$out/pdmflow"

# MinIO (about 2.5 minutes the first time on 2 cores; kept while it is
# that version).
static_minio() {
	"$GO" version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/minio/minio[[:space:]]+$MINIO_VERSION[[:space:]]" &&
		"$GO" version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+build[[:space:]]+CGO_ENABLED=0$"
}
if static_minio "$out/minio"; then
	echo "local-bin: $out/minio is $MINIO_VERSION, static"
else
	echo "local-bin: building MinIO $MINIO_VERSION (static) -> $out/minio"
	CGO_ENABLED=0 GOBIN="$PWD/$out" "$GO" install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
fi

# The root tree. Docker copies an image directory into a fresh named volume
# mounted on it, ownership included, so the volumes come out writable by the
# image's unprivileged user.
root=$out/rootfs
rm -rf "$root"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" \
	"$root/var/lib/pdmflow/data" "$root/var/lib/pdmflow/out" "$root/var/lib/pdmflow/nats" \
	"$root/var/lib/pdmflow/s3"
chmod 1777 "$root/tmp"
# The image user, so that tools that look it up (docker cp -a) find it.
echo "pdmflow:x:65532:65532:pdmflow:/var/lib/pdmflow:/sbin/nologin" >"$root/etc/passwd"
echo "pdmflow:x:65532:" >"$root/etc/group"
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
	if [ -f "$ca" ]; then
		cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
		break
	fi
done
[ -f "$root/etc/ssl/certs/ca-certificates.crt" ] || echo "local-bin: no CA bundle found on this host; S3 over https will need --s3-ca" >&2
echo "local-bin: done ($(du -sh "$out" | cut -f1) in $out)"
