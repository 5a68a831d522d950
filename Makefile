# pdmflow: the two commands of a fresh machine are `make run` (the demo)
# and `make test` (the tests). Everything here is phony.
GO      ?= go
BIN     := bin/pdmflow
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run test bench lint build clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pdmflow

# The demo: builds its data from data/photos, trains PDM-SR and a bicubic
# baseline, and prints the results table (about ten minutes on 2 cores).
run: build
	$(BIN) run

test:
	$(GO) vet ./...
	$(GO) test ./...

# Speed and memory live here, never in unit tests.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 5x ./kernels/

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin out
