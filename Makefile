# Tests use $DATABASE_URL when it is exported, else a throwaway Postgres
# cluster that persistence/pgtest starts from the installed server binaries.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: test build image fuzz bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
