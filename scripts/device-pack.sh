#!/usr/bin/env bash
# Packs what the GPU build needs into .device/ for a GPU machine that has
# CUDA, nvcc and a C compiler but no Go toolchain and no network
# (scripts/gpu-check.sh runs there):
#
#   scripts/device-pack.sh        # in the project root, where Go is
#
#   .device/go.tar.xz       this machine's Go toolchain, without its tests and docs (~35 MB)
#   .device/vendor.tar.xz   `go mod vendor` of the project (every build tag, ~4 MB)
#   .device/env.sh          sourced there: unpacks both, sets PATH and GOFLAGS
#
# .device/ is git-ignored (through .git/info/exclude); carry it along with
# the working tree. Each archive is rebuilt only when what it holds changed
# (the Go version; go.mod and go.sum).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
mkdir -p .device
goroot=$(go env GOROOT)
if [ ! -s .device/go.tar.xz ] || [ "$(cat .device/go.version 2>/dev/null)" != "$(go version)" ]; then
	echo "packing $(go version) from $goroot"
	# Anchored: an unanchored go/doc would also drop the standard library's
	# package go/doc (src/go/doc), which go/build imports.
	tar -C "$(dirname "$goroot")" --anchored \
		--exclude='go/test' --exclude='go/doc' --exclude='go/api' --exclude='go/misc' \
		--exclude='*_test.go' --exclude='go/src/*/testdata' --exclude='go/lib/time' \
		--exclude='go/pkg/tool/linux_amd64/pprof' --exclude='go/pkg/tool/linux_amd64/trace' \
		-cf - "$(basename "$goroot")" | xz -T0 -6 > .device/go.tar.xz.tmp
	mv .device/go.tar.xz.tmp .device/go.tar.xz
	go version > .device/go.version
fi
modsum=$(cat go.mod go.sum | sha256sum | cut -c1-64)
if [ ! -s .device/vendor.tar.xz ] || [ "$(cat .device/vendor.sum 2>/dev/null)" != "$modsum" ]; then
	echo "vendoring the modules"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	go mod vendor -o "$tmp/vendor"
	tar -C "$tmp" -cf - vendor | xz -T0 -6 > .device/vendor.tar.xz.tmp
	mv .device/vendor.tar.xz.tmp .device/vendor.tar.xz
	echo "$modsum" > .device/vendor.sum
fi
cat > .device/env.sh <<'EOF'
# Sourced on the GPU machine in the project root: the packed Go toolchain
# and modules (scripts/device-pack.sh).
mkdir -p /tmp/devgo
if [ ! -x /tmp/devgo/go/bin/go ] || [ "$(/tmp/devgo/go/bin/go version 2>/dev/null)" != "$(cat .device/go.version)" ]; then
	rm -rf /tmp/devgo/go && tar -C /tmp/devgo -xJf .device/go.tar.xz
fi
rm -rf vendor && tar -xJf .device/vendor.tar.xz
# No .git travels with the tree, and nothing can be downloaded.
export PATH=/tmp/devgo/go/bin:$PATH GOFLAGS="-mod=vendor -buildvcs=false" GOTOOLCHAIN=local \
	GOCACHE=/tmp/devgo/cache GOPATH=/tmp/devgo/path GOPROXY=off CGO_ENABLED=1
command -v "${CC:-gcc}" >/dev/null || echo ".device/env.sh: no C compiler (${CC:-gcc}) for cgo: set CC" >&2
EOF
du -sh .device/*.xz
echo "carry .device (run's carry: [\".device\"]); there: source .device/env.sh && scripts/gpu-check.sh"
