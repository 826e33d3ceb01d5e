# Two commands take a fresh clone (Node.js, npm and git only) to a running,
# tested system: `make dev` and `make test`. pnpm comes through npx when it is
# not installed; the workspace pins its own Node.js 24.
PNPM ?= $(shell command -v pnpm >/dev/null 2>&1 && echo pnpm || echo npx --yes pnpm@12)

.PHONY: install dev test build generate lint typecheck seed-inventory check-consistency token events bench clean

node_modules/.modules.yaml: package.json pnpm-lock.yaml pnpm-workspace.yaml gen/package.json tools/package.json packages/*/package.json services/*/package.json
	CI=true $(PNPM) install --frozen-lockfile </dev/null
	@touch $@

install: node_modules/.modules.yaml

## Run PostgreSQL (embedded, data in .data/), inventory-service on :9090 and order-service on :8080.
dev: install
	$(PNPM) run dev

## Run every test (embedded PostgreSQL unless TEST_DATABASE_URL is set).
test: install
	$(PNPM) test

## Regenerate gen/ from proto/ and type-check the whole workspace.
build: install generate typecheck

generate: install
	$(PNPM) exec buf generate

lint: install
	$(PNPM) exec buf lint
	$(PNPM) exec buf format --diff --exit-code

typecheck: install
	$(PNPM) exec tsc -p .

## Load the sample products into the inventory database (idempotent).
seed-inventory: install
	$(PNPM) --filter @ecommerce/inventory-service run seed

## Compare the orders and inventory databases; exits non-zero on any inconsistency.
## ORDERS_DATABASE_URL / INVENTORY_DATABASE_URL, or the development databases.
check-consistency: install
	$(PNPM) exec node tools/check-consistency.ts

## Print an access token signed by the development issuer's key (.data/issuer/), e.g.
##   make token SUB=alice                                   a customer, for orders-api
##   make token SUB=bob SCOPES="orders:read_all orders:fulfil"
##   make token SUB=ops AUD=inventory-api SCOPES=inventory:admin TTL=600
SUB ?= alice
token: install
	@$(PNPM) exec node tools/token.ts --sub "$(SUB)" --scopes "$(SCOPES)" $(if $(AUD),--aud "$(AUD)") $(if $(TTL),--ttl "$(TTL)")

## Watch the events flow through NATS JetStream, one line each (NATS_URL, default nats://127.0.0.1:4222):
##   make events                          new events of both streams
##   make events ALL=1                    everything the streams hold, then new ones
##   make events TYPE=orders.v1.order     only the types starting so
events: install
	@$(PNPM) exec node tools/events.ts $(if $(ALL),--all) $(if $(TYPE),--type "$(TYPE)")

clean:
	rm -rf .data node_modules */node_modules */*/node_modules

## Load the system (fresh PostgreSQL, 1,000 products) and compare with pgbench's ceiling.
bench: install
	$(PNPM) run bench
