# pdmflow: the two commands of a fresh machine are `make run` (the demo)
# and `make test` (the tests). Everything here is phony.
GO      ?= go
BIN     := bin/pdmflow
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# versitygw: the S3 server that the store tests run (internal/s3test).
VERSITYGW_VERSION := v1.8.0
GOPATH_BIN = $(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin

.PHONY: run test bench lint build clean tools compose-up compose-down compose-local-bin compose-test \
	gpu-ptx build-cuda vet-cuda gpu-check compose-gpu-bin soak

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pdmflow

# The GPU build (package gpu, docs/operations.md): nvcc compiles the
# kernels to PTX (embedded in the binary), then the pdmcuda build tag (not
# "cuda": gorgonia reads that tag itself and would link its own CUDA engine,
# which exits at start without a GPU and needs cuDNN). compute_70 PTX runs
# on every GPU from Volta on (the driver compiles it for the GPU at load).
NVCC     ?= nvcc
GPU_ARCH ?= compute_70
gpu-ptx:
	$(NVCC) -x cu -ptx -arch=$(GPU_ARCH) -o gpu/kernels.ptx gpu/kernels.cu.h

build-cuda: gpu-ptx
	$(GO) build -tags pdmcuda -ldflags "-X main.version=$(VERSION)" -o bin/pdmflow-cuda ./cmd/pdmflow

# (make test also runs the GPU code on the host emulation: -tags pdmcudaemu.)
# The cuda build compiles and vets everywhere (it loads the driver only
# when a GPU is asked for); its tests skip, saying why, without a GPU.
vet-cuda: gpu-ptx
	$(GO) vet -tags pdmcuda ./...
	$(GO) test -tags pdmcuda -count=1 ./gpu/

# On a machine with an NVIDIA GPU, CUDA and no Go: build with the packed
# toolchain, run the GPU tests and the GPU benchmark (scripts/gpu-check.sh).
gpu-check:
	scripts/gpu-check.sh

# The demo: builds its data from data/photos, trains PDM-SR and a bicubic
# baseline, and prints the results table (7-13 minutes on 2 cores).
run: build
	$(BIN) run

test: tools
	$(GO) vet ./...
	PATH="$(GOPATH_BIN):$$PATH" $(GO) test ./...
	$(GO) vet -tags pdmcudaemu ./gpu/ ./producer/ ./internal/bench/ ./cmd/pdmflow/
	PATH="$(GOPATH_BIN):$$PATH" $(GO) test -tags pdmcudaemu ./gpu/ ./producer/ ./internal/bench/ ./cmd/pdmflow/

# Installs versitygw unless that version is there. `versitygw --version`
# says "git" for a `go install` build, so the binary's build info is read.
tools:
	@if $(GO) version -m "$(GOPATH_BIN)/versitygw" 2>/dev/null | \
		grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/versity/versitygw[[:space:]]+$(VERSITYGW_VERSION)[[:space:]]"; then \
		echo "versitygw $(VERSITYGW_VERSION) is in $(GOPATH_BIN)"; \
	else \
		echo "installing versitygw $(VERSITYGW_VERSION) into $(GOPATH_BIN)"; \
		rm -f "$(GOPATH_BIN)/versitygw" && CGO_ENABLED=0 GOBIN="$(GOPATH_BIN)" $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

# The fault soak (internal/soak): a trainer and producers on the loopback
# interface for SOAK of random faults (malformed and foreign messages,
# producers killed, the broker restarted, the store stopped, weights of
# another config), then the accounting. SOAK_SEED replays a choice of faults.
SOAK ?= 5m
soak: tools
	PDMFLOW_SOAK=$(SOAK) PDMFLOW_SOAK_SEED=$(SOAK_SEED) PATH="$(GOPATH_BIN):$$PATH" $(GO) test -count=1 -v -timeout 60m -run '^TestSoak$$' ./internal/soak/

# Speed and memory live here, never in unit tests.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 5x ./kernels/
	$(BIN) bench

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin out gpu/kernels.ptx

# docker compose (docs/operations.md). `make compose-up` runs docker-compose.yml
# with pdmflow and MinIO built from source in a Go image and the official
# nats image; LOCAL=1 builds every image FROM scratch from binaries built
# here (docker-compose.local.yml: nothing is pulled); CLUSTER=1 runs a
# 3-node JetStream cluster (docker-compose.cluster.yml); GPU=1 adds a
# producer per GPU (docker-compose.gpu.yml, needs the NVIDIA container
# toolkit); PRODUCERS=N CPU producers. The credentials are in .env (written
# with random ones from .env.example when missing).
COMPOSE   ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
PRODUCERS ?= 2
COMPOSE_FILES = -f docker-compose.yml $(if $(LOCAL),-f docker-compose.local.yml) \
	$(if $(CLUSTER),-f docker-compose.cluster.yml $(if $(LOCAL),-f docker-compose.cluster.local.yml)) \
	$(if $(GPU),-f docker-compose.gpu.yml)
COMPOSE_ENV = $(if $(CLUSTER),PDMFLOW_REPLICAS=$${PDMFLOW_REPLICAS:-3})

compose-up: .env $(if $(LOCAL),compose-local-bin) $(if $(GPU),compose-gpu-bin)
	$(COMPOSE_ENV) $(COMPOSE) $(COMPOSE_FILES) up -d --build --scale producer=$(PRODUCERS)

# Stops and removes the containers; the volumes (stream, weights, data,
# checkpoints) stay. `$(COMPOSE) down -v` removes them too.
compose-down:
	$(COMPOSE) $(COMPOSE_FILES) down --remove-orphans

# .env: .env.example with random credentials, readable by its owner only.
.env:
	@umask 077; rnd() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }; \
	sed -e "s/^PDMFLOW_NATS_PASSWORD=.*/PDMFLOW_NATS_PASSWORD=$$(rnd)/" \
	    -e "s/^PDMFLOW_S3_SECRET_KEY=.*/PDMFLOW_S3_SECRET_KEY=$$(rnd)/" .env.example >.env.new && mv .env.new .env
	@echo "wrote .env with random credentials (see .env.example)"

# Static binaries and the root tree for the FROM-scratch images, in bin/docker.
compose-local-bin:
	GO="$(GO)" VERSION="$(VERSION)" deploy/compose/local-bin.sh

# The GPU producer image's binary (pdmcuda) and libraries, in bin/docker-gpu
# (deploy/compose/gpu-bin.sh; needs nvcc and cuBLAS). GPU=1 adds the GPU
# producers of docker-compose.gpu.yml.
compose-gpu-bin: compose-local-bin
	GO="$(GO)" VERSION="$(VERSION)" NVCC="$(NVCC)" deploy/compose/gpu-bin.sh

# The compose deployment end to end, with its fault tests (internal/composetest).
compose-test: compose-local-bin
	PDMFLOW_COMPOSE_TEST=1 PDMFLOW_COMPOSE="$(COMPOSE)" $(GO) test -count=1 -v -timeout 30m ./internal/composetest/
