# Tests use $DATABASE_URL when it is exported, else a throwaway Postgres
# cluster that persistence/pgtest starts from the installed server binaries.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: test build image fuzz bench clean chaos soak sec pgbench

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

# Every fuzz target, each for FUZZTIME (CI: 10s each; the soak runs them
# longer). `make test` runs their seed corpora as plain tests. The guard
# fails when a Fuzz function is missing from FUZZ_TARGETS. A target that
# fails with no failing input written is run once more: Go 1.26's fuzz
# coordinator can end a run at the -fuzztime deadline with a bare "context
# deadline exceeded" (golang/go#75804, fixed in Go 1.27). A written input,
# or a second failure, fails.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	.:FuzzParseAmount .:FuzzAmountString .:FuzzParseAsset .:FuzzValidateMemo .:FuzzNewSessionMemo \
	./api:FuzzSessionCreate ./api:FuzzListQuery ./api:FuzzWebhookEndpointCreate \
	./stellar/horizon:FuzzDecodeNormalize \
	./stellar/sep7:FuzzPayRoundTrip ./stellar/sep7:FuzzForSessionDestination \
	./webhooks:FuzzValidateURL
fuzz:
	@have=$$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | wc -l); \
	if [ "$$have" -ne $(words $(FUZZ_TARGETS)) ]; then \
		echo "fuzz: $$have Fuzz functions, but FUZZ_TARGETS lists $(words $(FUZZ_TARGETS))"; exit 1; \
	fi
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; corpus=$$pkg/testdata/fuzz/$$fn; \
		echo "==> $$fn in $$pkg for $(FUZZTIME)"; \
		before=$$(ls $$corpus 2>/dev/null | wc -l); \
		if $(GO) test -run '^$$' -fuzz '^'"$$fn"'$$' -fuzztime $(FUZZTIME) $$pkg; then continue; fi; \
		if [ "$$(ls $$corpus 2>/dev/null | wc -l)" -ne "$$before" ]; then \
			echo "fuzz: $$fn found a failing input (written to $$corpus)"; exit 1; \
		fi; \
		echo "==> $$fn failed without writing an input (Go 1.26's fuzztime race, golang/go#75804, prints a bare 'context deadline exceeded'); once more"; \
		$(GO) test -run '^$$' -fuzz '^'"$$fn"'$$' -fuzztime $(FUZZTIME) $$pkg; \
	done

# gosec at a pinned version. The module cache is asked first and the usual
# proxy only for what it lacks, so this works offline once gosec has been
# fetched. Exceptions and their reasons: docs/decisions/0008-gosec-exceptions.md.
GOSEC_VERSION ?= v2.30.0
sec:
	GOPROXY="file://$$($(GO) env GOMODCACHE)/cache/download,$$($(GO) env GOPROXY)" \
	$(GO) run github.com/securego/gosec/v2/cmd/gosec@$(GOSEC_VERSION) -quiet -exclude-generated \
		-exclude-dir=chaos -exclude-dir=loadgen -exclude-dir=pgtest -exclude=G115,G404 ./...

# protoc from Debian's protobuf-compiler; protoc-gen-go at go.mod's
# google.golang.org/protobuf version (go install ...protoc-gen-go@v1.36.12).
generate:
	protoc --go_out=. --go_opt=paths=source_relative actors/clusterpb/session.proto

# Cluster tests (build tag cluster): in-process grains and the multi-process
# etcd cluster (needs etcd from Debian's etcd-server). Not part of `make test`.
cluster-test:
	CHAOS=1 $(GO) test -tags cluster -count=1 -timeout 30m -v -run 'Cluster' ./actors/ ./chaos/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The raw Postgres ceiling of checkoutd's settle and create transactions
# (issue #7): pgbench on $DATABASE_URL's server (default 127.0.0.1:5432), in
# a database checkoutd_pgbench of its own, dropped at the end. PGBENCH_TIME
# seconds a script (default 20). See persistence/pgbench/README.md.
pgbench:
	GO="$(GO)" sh persistence/pgbench/run.sh

clean:
	rm -rf bin

# The fault-injection suite (docs/reliability.md): the CI-sized run takes at
# most 5 minutes. CHAOS_SEED=n replays one scenario's fault schedule.
chaos:
	CHAOS=1 $(GO) test -count=1 -parallel 10 -timeout 10m -v ./chaos/

# The long soak: every scenario in rounds until SOAK_DURATION has passed,
# then every fuzz target for SOAK_FUZZTIME.
SOAK_DURATION ?= 30m
SOAK_TIMEOUT  ?= 3h
SOAK_FUZZTIME ?= 2m
soak:
	CHAOS=1 CHAOS_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -parallel 10 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' -v ./chaos/
	$(MAKE) fuzz FUZZTIME=$(SOAK_FUZZTIME)
