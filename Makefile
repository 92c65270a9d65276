# Two commands set everything up: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PORT ?= 5000
MODEL ?= $(or $(CHATBOT_MODEL),models/chatbot_model.h5)
DATA ?= data/intents.json
# The bots trained with `--encoder none`, for make bench's comparison.
NONE_MODEL ?= models/chatbot_none.h5
CLINC_NONE_MODEL ?= models/clinc150_none.h5

.PHONY: install install-dev model run test test-fast lint format bench bench-accuracy clean screenshots image-test \
	load reliability-report

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

model: $(MODEL)

$(MODEL): $(DATA) | $(VENV)/.installed
	$(PY) -m chatbot train --data $(DATA) --out $(MODEL)

run: install model
	PORT=$(PORT) CHATBOT_MODEL=$(MODEL) $(VENV)/bin/gunicorn --config app/gunicorn_conf.py

# The browser tests drive Debian's Chromium (Playwright from PyPI brings only its driver).
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The scale-out test runs a real redis-server and nginx as plain processes on 127.0.0.1.
REDIS_SERVER ?= /usr/bin/redis-server
NGINX ?= /usr/sbin/nginx

$(REDIS_SERVER):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server

$(NGINX):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx

# The conversation log's tests run a real PostgreSQL server (Debian keeps it in /usr/lib/postgresql).
POSTGRES_DIR ?= /usr/lib/postgresql

$(POSTGRES_DIR):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

test: install-dev $(CHROMIUM) $(REDIS_SERVER) $(NGINX) $(POSTGRES_DIR)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# The inner loop: the tests not marked slow (docs/testing.md).
test-fast: install-dev
	$(PY) -m pytest -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Issue 20's cost targets, for both bots with and without the sentence encoder: ours / hello-world
# (gunicorn gthread 2 x 4, varied messages) per bot; PSS, start and p99 at half the maximum rate
# (offered at a fixed rate) in every run; per message in-process in bench.latency.
BOTS_WITH_TARGETS = --model $(MODEL) --target-ratio 0.25 --model $(NONE_MODEL) --target-ratio 0.41 \
	$(if $(wildcard $(CLINC_MODEL)),--model $(CLINC_MODEL) --target-ratio 0.2) \
	$(if $(wildcard $(CLINC_NONE_MODEL)),--model $(CLINC_NONE_MODEL) --target-ratio 0.27)
BOTS = --model $(MODEL) --model $(NONE_MODEL) $(if $(wildcard $(CLINC_MODEL)),--model $(CLINC_MODEL)) \
	$(if $(wildcard $(CLINC_NONE_MODEL)),--model $(CLINC_NONE_MODEL))

bench: install $(MODEL) $(NONE_MODEL)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(if $(wildcard $(CLINC_MODEL)),,@echo "no $(CLINC_MODEL): make $(CLINC_MODEL) trains the CLINC150-size bot")
	$(PY) -m bench.latency $(BOTS)
	$(PY) -m bench.encoder_cost --model $(MODEL)
	$(PY) -m bench.model_cost $(BOTS)
	$(PY) -m bench.request_cost $(BOTS)
	$(PY) -m bench.entities
	$(PY) -m bench.metrics_overhead --model $(MODEL)
	$(PY) -m bench.metrics_overhead --model $(MODEL) --rate-limit
	$(PY) -m bench.throughput --worker-class gthread $(BOTS_WITH_TARGETS)
	$(PY) -m bench.throughput --worker-class gevent $(BOTS_WITH_TARGETS)
	$(PY) -m bench.convlog_overhead --model $(MODEL)

# 60 s of wrk on /predict and on /api/v1/chat; the figures go to docs/reliability.md.
load: install $(MODEL)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	PY=$(PY) bench/load.sh $(MODEL)
	$(PY) -m bench.reliability_report

reliability-report: install
	$(PY) -m bench.reliability_report

CLINC ?= ../shared/datasets/clinc150
MTOP ?= ../shared/datasets/mtop
CLINC_MODEL ?= models/clinc150.h5

# A bot of realistic size for the benchmarks: CLINC150's 150 intents, 15,000 patterns (~10 min).
$(CLINC_MODEL): | install
	$(PY) -m chatbot train --data $(CLINC)/train.intents.json --val $(CLINC)/val.intents.json \
	  --oos-val $(CLINC)/oos_val.txt --plain-text --out $@

# The same bots trained with `--encoder none`, for the benchmarks' comparison.
$(NONE_MODEL): $(DATA) | install
	$(PY) -m chatbot train --data $(DATA) --encoder none --out $@

$(CLINC_NONE_MODEL): | install
	$(PY) -m chatbot train --data $(CLINC)/train.intents.json --val $(CLINC)/val.intents.json \
	  --oos-val $(CLINC)/oos_val.txt --plain-text --encoder none --out $@

bench-accuracy: install
	$(PY) -m bench.accuracy --clinc $(CLINC) --mtop $(MTOP)

# Build the Docker image with a local engine and base image, run it and check that it serves
# (root; installs docker.io and debootstrap). See docs/deployment.md.
image-test: install
	PY=$(abspath $(PY)) bash scripts/image_test.sh

screenshots: install-dev $(MODEL)
	$(PY) -m scripts.screenshots --model $(MODEL)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage
