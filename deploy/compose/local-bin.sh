#!/usr/bin/env bash
# Builds what the FROM-scratch images of docker-compose.local.yml copy, into
# bin/docker (gitignored): static (CGO_ENABLED=0) binaries of pdmflow and
# versitygw, and the root tree (state directories owned by the image user,
# /tmp, /etc/passwd naming that user, CA certificates). Needs Go; pulls no image.
#
#   deploy/compose/local-bin.sh      (make compose-local-bin)
#
# Environment: GO (default go), VERSION (stamped into the binary),
# PDMFLOW_BUCKET (the bucket directory baked into the S3 image; default pdmflow).
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
bucket=${PDMFLOW_BUCKET:-pdmflow}
out=bin/docker
mkdir -p "$out"

echo "local-bin: pdmflow (static) -> $out/pdmflow"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$out/pdmflow.new" ./cmd/pdmflow
mv -f "$out/pdmflow.new" "$out/pdmflow"

# versitygw: reuse `make tools`'s binary when it is that version and static.
gobin=$("$GO" env GOBIN)
[ -n "$gobin" ] || gobin="$(cut -d: -f1 <<<"$("$GO" env GOPATH)")/bin"
static_vgw() {
	"$GO" version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/versity/versitygw[[:space:]]+$VERSITYGW_VERSION[[:space:]]" &&
		"$GO" version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+build[[:space:]]+CGO_ENABLED=0$"
}
if static_vgw "$out/versitygw"; then
	echo "local-bin: $out/versitygw is $VERSITYGW_VERSION, static"
elif static_vgw "$gobin/versitygw"; then
	echo "local-bin: versitygw $VERSITYGW_VERSION (static) from $gobin"
	cp -f "$gobin/versitygw" "$out/versitygw"
else
	echo "local-bin: building versitygw $VERSITYGW_VERSION (static) -> $out/versitygw"
	CGO_ENABLED=0 GOBIN="$PWD/$out" "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

# The root tree. Docker copies an image directory into a fresh named volume
# mounted on it, ownership included, so the volumes come out writable by the
# image's unprivileged user.
root=$out/rootfs
rm -rf "$root"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" \
	"$root/var/lib/pdmflow/data" "$root/var/lib/pdmflow/out" "$root/var/lib/pdmflow/nats" \
	"$root/var/lib/pdmflow/s3/$bucket"
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
