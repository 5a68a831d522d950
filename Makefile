# pdmflow: the two commands of a fresh machine are `make run` (the demo)
# and `make test` (the tests). Everything here is phony.
GO      ?= go
BIN     := bin/pdmflow
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# versitygw: the S3 server that the store tests run (internal/s3test).
VERSITYGW_VERSION := v1.8.0
GOPATH_BIN = $(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin

.PHONY: run test bench lint build clean tools

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pdmflow

# The demo: builds its data from data/photos, trains PDM-SR and a bicubic
# baseline, and prints the results table (about ten minutes on 2 cores).
run: build
	$(BIN) run

test: tools
	$(GO) vet ./...
	PATH="$(GOPATH_BIN):$$PATH" $(GO) test ./...

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

# Speed and memory live here, never in unit tests.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 5x ./kernels/
	$(BIN) bench

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin out
