#!/usr/bin/env bash
# Builds what the GPU producer image (deploy/compose/Dockerfile.gpu) copies,
# into bin/docker-gpu/root (gitignored): pdmflow built with the pdmcuda tag
# (the kernels compiled to PTX by nvcc first), the C library it runs on, and
# cuBLAS with what it needs. The NVIDIA container runtime mounts the driver
# (libcuda.so.1) into the container; the binary loads it and cuBLAS with
# dlopen when a GPU is asked for, and falls back to the CPU with --device
# auto where there is none. Needs Go, nvcc and the CUDA toolkit's cuBLAS
# (Debian: nvidia-cuda-toolkit, nvidia-cuda-dev); pulls no image.
#
#   deploy/compose/gpu-bin.sh        (make compose-gpu-bin)
#
# Environment: GO (default go), NVCC (nvcc), GPU_ARCH (compute_70), VERSION.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
NVCC=${NVCC:-nvcc}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
root=bin/docker-gpu/root
libdir=$root/usr/lib/x86_64-linux-gnu
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/lib64" "$libdir"

echo "gpu-bin: kernels -> PTX, pdmflow (pdmcuda) -> $root/usr/local/bin/pdmflow"
"$NVCC" -x cu -ptx -arch="${GPU_ARCH:-compute_70}" -o gpu/kernels.ptx gpu/kernels.cu.h
CGO_ENABLED=1 "$GO" build -tags pdmcuda -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$root/usr/local/bin/pdmflow" ./cmd/pdmflow

# cuBLAS as the binary dlopens it (libcublas.so.N), with cuBLASLt.
lib() { ldconfig -p | awk -v re="^$1\\.so\\.[0-9]+\$" '$1 ~ re && /x86-64/ {print $NF; exit}'; }
blas=$(lib libcublas)
blaslt=$(lib libcublasLt)
if [ -z "$blas" ] || [ -z "$blaslt" ]; then
	echo "gpu-bin: cuBLAS not found (ldconfig -p); install the CUDA toolkit (Debian: nvidia-cuda-toolkit)" >&2
	exit 1
fi
# Every shared library of the binary and of cuBLAS, under the names they are
# asked for; the dynamic loader where the binary looks for it.
{
	echo "$blas"
	echo "$blaslt"
	ldd "$root/usr/local/bin/pdmflow" "$blas" "$blaslt" | awk '/=> \// {print $3}'
} | sort -u | while read -r f; do
	cp -L "$f" "$libdir/$(basename "$f")"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
du -sh "$root"
