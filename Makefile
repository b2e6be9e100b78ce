# The whole set-up of a fresh clone: `make repro` and `make test`. Both create .venv when it is missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.palbench-installed

.PHONY: install test repro speed clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when the dependency list changes. pip's find-links warnings about local index folders
# are noise on this machine; real errors still fail the target (pipefail). pip compiles the bytecode: without it
# (--no-compile) an install is 46 s shorter, but where PYTHONDONTWRITEBYTECODE is set (this machine) every
# process then compiles torch & co. again, and each pipeline stage starts twice as slowly (measured).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(STAMP)

install: $(STAMP)

# Two workers on the 2-core machines (pytest-xdist); tests/conftest.py groups the tests that share a fixture.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The venv's bin comes first on PATH so that DVC stages find `palbench`.
repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Speed benchmarks (minutes; not part of the tests). Each writes benchmarks/speed/results/<name>.md.
speed: $(STAMP)
	$(BIN)/python benchmarks/speed/train_step.py --arch vgg16
	$(BIN)/python benchmarks/speed/train_step.py --arch resnet50
	$(BIN)/python benchmarks/speed/backbones.py
	$(BIN)/python benchmarks/speed/train_step.py --arch dlib_face_resnet --size 150 --batch 16 --rounds 11 --no-naive --layers layer3.1 layer4.2 layer5.0
	$(BIN)/python benchmarks/speed/priors.py
	$(BIN)/python benchmarks/speed/synth.py
	$(BIN)/python benchmarks/speed/grid_step.py
	$(BIN)/python benchmarks/speed/side_by_side.py

clean-venv:
	rm -rf $(VENV)
