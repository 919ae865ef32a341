# Entry point for humans and CI. Every target is idempotent: stamps make a second run skip
# what is already installed (Debian packages, the venv, the Kafka jars).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The local Kafka broker (streams/broker.py). Use another port to run a second checkout's
# broker next to this one: `make test KAFKA_PORT=9192`.
KAFKA_PORT ?= 9092
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
KAFKA_STAMP := .cache/kafka/$(KAFKA_VERSION)/libs/.fetched
# Maven's own download cache stays inside the checkout, so nothing outside it is assumed.
MAVEN_REPO ?= $(CURDIR)/.cache/maven
MVN := mvn -B -q --no-transfer-progress -Dmaven.repo.local=$(MAVEN_REPO)

# Every liqmon command run by make talks to the broker make started.
export LIQMON_KAFKA__BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)

# Targets `make run` runs once Kafka is up and the topics exist: the end-to-end demo
# (monitor + tail + crash simulation, deploy/demo.sh).
RUN_STEPS ?= demo

# npm checkers the tests run with node: the AsyncAPI parser, the compose-spec schema.
CHECKS_STAMP := deploy/checks/node_modules/.installed

.PHONY: run demo test soak bench lint system kafka-jars kafka-start kafka-stop kafka-status \
	topics deploy-checks kubernetes

run: topics
	$(BIN)/liqmon kafka status --port $(KAFKA_PORT)
ifneq ($(strip $(RUN_STEPS)),)
	$(MAKE) --no-print-directory $(RUN_STEPS)
endif

test: kafka-start $(CHECKS_STAMP)
	$(BIN)/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The fault-injection proof (tests/integration/test_fault_injection.py) at soak size: more
# accounts, a longer crash and more kill -9s than the bounded run inside `make test`
# (about 15 minutes on 2 cores). Kills are spread so that most land on a running instance.
SOAK_ACCOUNTS ?= 20000
SOAK_SECONDS ?= 240
SOAK_KILLS ?= 40
SOAK_SEED ?= 12

soak: kafka-start
	LIQMON_FAULTS_ACCOUNTS=$(SOAK_ACCOUNTS) LIQMON_FAULTS_DURATION=$(SOAK_SECONDS) \
	LIQMON_FAULTS_KILLS=$(SOAK_KILLS) LIQMON_FAULTS_SEED=$(SOAK_SEED) \
	$(BIN)/pytest tests/integration/test_fault_injection.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests/bench  # nothing else runs the benches' code before make bench

bench: kafka-start
	@set -e; for b in tests/bench/bench_*.py; do [ -e "$$b" ] || continue; $(BIN)/python "$$b"; done

# Debian packages whose command is missing (java, mvn, kcat, prometheus, alertmanager, npm,
# python3-venv).
system:
	@PYTHON=$(PYTHON) deploy/setup-system.sh

$(STAMP): pyproject.toml | system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CHECKS_STAMP): deploy/checks/package.json deploy/checks/package-lock.json | system
	cd deploy/checks && npm ci --no-audit --no-fund --loglevel=error
	touch $@

deploy-checks: $(CHECKS_STAMP)

# Rewrite the generated Kubernetes manifests (PrometheusRule from the rules, KafkaTopics from
# the settings, the example instruments); tests/unit/test_kubernetes.py fails when they are stale.
kubernetes: $(STAMP)
	$(BIN)/python deploy/kubernetes/render.py generate

$(KAFKA_STAMP): deploy/kafka/pom.xml | system
	$(MVN) -f deploy/kafka/pom.xml package
	touch $@

kafka-jars: $(KAFKA_STAMP)

kafka-start: $(STAMP) $(KAFKA_STAMP)
	$(BIN)/liqmon kafka start --port $(KAFKA_PORT)

kafka-stop: $(STAMP)
	$(BIN)/liqmon kafka stop --port $(KAFKA_PORT)

kafka-status: $(STAMP)
	$(BIN)/liqmon kafka status --port $(KAFKA_PORT)

topics: kafka-start
	$(BIN)/liqmon topics create

demo: kafka-start
	deploy/demo.sh
