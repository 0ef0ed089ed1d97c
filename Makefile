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

.PHONY: install lock demo demo-video train-tiny checkpoints test test-fast lint
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml .ci/install.sh .ci/debian-packages.txt .ci/constraints.txt
	bash .ci/install.sh
	touch $@

# Re-resolve pyproject.toml's ranges into .ci/constraints.txt (the exact versions installs use); review the
# diff and run `make test` before committing it.
lock:
	bash .ci/lock.sh

# A packaged real photo (matplotlib's Grace Hopper: never seen in training) says a sentence, with the shipped
# checkpoints: outputs/demo.mp4.
PHOTO = $(shell $(BIN)/python -c "from talking_face.datamodules.faces.photos import packaged_photos as p; \
	print({x.name: x for x in p()}['grace_hopper'].file())" 2>/dev/null)
demo: install
	$(MAKE) --no-print-directory demo-video
demo-video:
	$(BIN)/talking-face generate --face "$(PHOTO)" --out $(OUT)/demo.mp4 \
		--text "Hello! I was never in the training data, and I can say anything you type."

# The stages on the built-in corpus at tiny settings (a few minutes): corpus -> cache -> stage 1 fit and test.
train-tiny: install
	$(BIN)/talking-face synth --out $(OUT)/corpus --speakers 4 --utterances 8
	$(BIN)/talking-face preprocess --corpus $(OUT)/corpus --cache_dir $(OUT)/cache --workers 2
	$(BIN)/talking-face inspect --cache_dir $(OUT)/cache --out $(OUT)/cache_overview.png
	$(BIN)/talking-face fit -c configs/landmarks.yaml -c configs/landmarks_tiny.yaml --data.cache_dir $(OUT)/cache \
		--trainer.max_epochs 60
	$(BIN)/talking-face test -c configs/landmarks.yaml -c configs/landmarks_tiny.yaml --data.cache_dir $(OUT)/cache \
		--ckpt_path outputs/landmarks_tiny/checkpoints/last.ckpt

# The recipe of the checkpoints in talking_face/generation/shipped/ (about 1.5 h on 2 CPU cores, minutes
# on a GPU): corpus, cache, both fits, their tests, export with the measured metrics in each header.
SHIPPED = outputs/shipped
checkpoints: install
	$(BIN)/talking-face synth --out $(SHIPPED)/corpus --speakers 12 --utterances 24 --seed 0
	$(BIN)/talking-face preprocess --corpus $(SHIPPED)/corpus --cache_dir $(SHIPPED)/cache --workers 2
	for stage in landmarks face2vid; do \
		$(BIN)/talking-face fit -c configs/$$stage.yaml -c configs/shipped_$$stage.yaml && \
		$(BIN)/talking-face test -c configs/$$stage.yaml -c configs/shipped_$$stage.yaml \
			--ckpt_path $(SHIPPED)/$$stage/checkpoints/last.ckpt && \
		$(BIN)/talking-face export --stage $$stage --checkpoint $(SHIPPED)/$$stage/checkpoints/last.ckpt \
			--log_dir $(SHIPPED)/$$stage \
			--out talking_face/generation/shipped/$$stage.ckpt || exit 1; \
	done

test: install
	mkdir -p $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR)
	$(BIN)/pytest tests notebooks --nbmake -p no:cacheprovider

# The fast subset while working (under 2 minutes on 2 CPU cores): no test that builds a corpus or trains for
# long (those are marked slow; tests/conftest.py marks every user of the corpus fixtures). CI runs `make test`.
test-fast: install
	$(BIN)/pytest tests -m "not slow" -p no:cacheprovider

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
