# qaqueue — run `make help` for the targets.
GO        ?= go
PKGS      ?= ./...
BIN       ?= bin/qa
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 20s

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## start the whole system in one process (embedded Redis; demo LM unless a key is set)
	$(GO) run ./cmd/qa dev

.PHONY: test
test: ## vet, then every test with the race detector (real redis-server when installed)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

.PHONY: test-short
test-short: ## fast tests only, no race detector
	$(GO) test -short -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

BENCH_JSON  ?= bin/bench.json
BENCH_FLAGS ?=

.PHONY: bench
bench: build ## qa-bench against the release bin/qa: every scenario beside its same-run baseline and goal (≤ 10 min); JSON in BENCH_JSON
	$(GO) build -o bin/qa-bench ./cmd/qa-bench
	bin/qa-bench --qa $(BIN) --json $(BENCH_JSON) $(BENCH_FLAGS)

.PHONY: bench-quick
bench-quick: ## qa-bench --quick: every scenario, smaller and shorter (about 5 min)
	$(MAKE) bench BENCH_FLAGS=--quick

.PHONY: bench-go
bench-go: ## Go benchmarks (go test -bench), with same-run baselines
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: build
build: ## build the qa binary into bin/ with the release flags
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/qa

.PHONY: vet
vet: ## go vet and gofmt check
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

.PHONY: update-docs-assets
update-docs-assets: ## vendor swagger-ui-dist for /docs (SWAGGER_UI_VERSION, default npm's latest)
	api/web/docs/update.sh $(SWAGGER_UI_VERSION)

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy

# --- deployment (issue 7): images, compose, and checks that need no Docker engine
IMAGE   ?= qaqueue
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
WORKERS_SCALE ?= 2

.PHONY: docker
docker: ## build the API and worker images, tagged VERSION (needs a Docker engine)
	docker build -f Dockerfile.api --build-arg VERSION=$(VERSION) -t $(IMAGE)-api:$(VERSION) .
	docker build -f Dockerfile.worker --build-arg VERSION=$(VERSION) -t $(IMAGE)-worker:$(VERSION) .

.PHONY: compose-up
compose-up: ## start Redis, the API and WORKERS_SCALE workers with docker compose (makes .env from .env.example)
	@test -f .env || { cp .env.example .env; echo "compose-up: created .env from .env.example: set the LM key and API_KEYS there"; }
	VERSION=$(VERSION) $(COMPOSE) -p qaqueue up -d --build --scale worker=$(WORKERS_SCALE)

.PHONY: compose-down
compose-down: ## stop the compose stack (volumes are kept)
	$(COMPOSE) -p qaqueue --profile monitoring --profile demo down

.PHONY: deploy-check
deploy-check: ## validate the Dockerfiles' build, docker-compose.yml and the Kubernetes manifests (no engine, no cluster)
	GO=$(GO) bash deploy/check.sh
