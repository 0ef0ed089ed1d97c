# The README's two commands: `make demo` (install + the main job on the built-in corpus) and
# `make test` (install + the whole test suite, notebooks included). Everything lands in outputs/.
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= outputs
export WANDB_MODE ?= offline
export WANDB_DIR := $(abspath $(OUT))
export JUPYTER_RUNTIME_DIR := $(abspath $(OUT))/.jupyter/runtime
export JUPYTER_DATA_DIR := $(abspath $(OUT))/.jupyter/data
export MPLBACKEND := Agg
# idle OpenMP threads sleep instead of spinning: on a small shared CPU that is 6x faster (measured)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test lint
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml .ci/install.sh .ci/debian-packages.txt
	bash .ci/install.sh
	touch $@

demo: install
	$(BIN)/talking-face synth --out $(OUT)/corpus --speakers 4 --utterances 8
	$(BIN)/talking-face preprocess --corpus $(OUT)/corpus --cache_dir $(OUT)/cache --workers 2
	$(BIN)/talking-face inspect --cache_dir $(OUT)/cache --out $(OUT)/cache_overview.png
	$(BIN)/talking-face fit -c configs/landmarks_tiny.yaml --data.cache_dir $(OUT)/cache --trainer.max_epochs 60
	$(BIN)/talking-face test -c configs/landmarks_tiny.yaml --data.cache_dir $(OUT)/cache \
		--ckpt_path outputs/landmarks_tiny/checkpoints/last.ckpt

test: install
	mkdir -p $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR)
	$(BIN)/pytest tests notebooks --nbmake -p no:cacheprovider

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
