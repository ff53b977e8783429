# Tests use $DATABASE_URL when it is exported, else a throwaway Postgres
# cluster that persistence/pgtest starts from the installed server binaries.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: test build image fuzz bench clean chaos soak

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/checkoutd ./cmd/checkoutd
	@if [ -d cmd/loadgen ]; then \
		echo '$(GO) build -ldflags "$(LDFLAGS)" -o bin/loadgen ./cmd/loadgen'; \
		$(GO) build -ldflags "$(LDFLAGS)" -o bin/loadgen ./cmd/loadgen; \
	fi

# The container image (Dockerfile), stamped with the same version.
image:
	docker build --build-arg VERSION=$(VERSION) -t checkoutd:$(VERSION) .

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseAmount -fuzztime 30s .

# protoc from Debian's protobuf-compiler; protoc-gen-go at go.mod's
# google.golang.org/protobuf version (go install ...protoc-gen-go@v1.36.12).
generate:
	protoc --go_out=. --go_opt=paths=source_relative actors/clusterpb/session.proto

# Cluster tests (build tag cluster): in-process grains and the multi-process
# etcd cluster (needs etcd from Debian's etcd-server). Not part of `make test`.
cluster-test:
	$(GO) test -tags cluster -count=1 -timeout 20m -v -run 'Cluster' ./actors/ ./cmd/checkoutd/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin

# The fault-injection suite (docs/reliability.md): the CI-sized run takes at
# most 5 minutes. CHAOS_SEED=n replays one scenario's fault schedule.
chaos:
	CHAOS=1 $(GO) test -count=1 -parallel 10 -timeout 10m -v ./chaos/

# The long soak: every scenario in rounds until SOAK_DURATION has passed.
SOAK_DURATION ?= 30m
SOAK_TIMEOUT  ?= 3h
soak:
	CHAOS=1 CHAOS_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -parallel 10 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' -v ./chaos/
