# Hands-On CNNs. `make book` builds the site, `make test` runs the whole suite. Needs only Python 3.10+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := chapters exercises
NBMAKE_TIMEOUT ?= 400
# Notebooks are executed in a copy of the book (tools/stage_book.py), never in place: the working tree stays as
# committed (no outputs) after `make book` and `make test`, and `make lab` opens clean notebooks.
STAGE  := _build/src
# Without a GPU, PyTorch's CPU-only wheels avoid the CUDA ones (Linux). Only used when .venv is first set up:
#   rm -rf .venv && make book TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
export PYTHONUNBUFFERED := 1

.PHONY: help venv vendor book execute site test unit notebooks proofs site-test lab exercises bench strip clean \
        sync-repo check-repo

help:
	@echo "make book       set up .venv, execute every notebook once (copies in _build/src), build _build/html"
	@echo "make test       the whole suite: unit tests, notebooks, grader proofs, -W site build, browser test"
	@echo "make lab        open the notebooks in JupyterLab"
	@echo "make exercises  regenerate student notebooks and solution pages from exercises/source/*.ipynb"
	@echo "make proofs     prove every exercise: solution full marks, student zero, wrong cells fail"
	@echo "make bench      measure notebook run times and conv speed (writes benchmarks/results/)"
	@echo "make strip      remove outputs from the notebooks in the working tree"
	@echo "make sync-repo  copy repository.url/branch from _config.yml into install cells and docs"
	@echo "make check-repo ask git whether that repository and branch exist (needs the network)"
	@echo "make clean      remove _build and caches (keeps .venv)"
	@echo "No GPU? Set up a fresh .venv with PyTorch's CPU-only wheels (much smaller download):"
	@echo "  make book TORCH_INDEX=https://download.pytorch.org/whl/cpu"

venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install -q --index-url $(TORCH_INDEX) "torch>=2.4" "torchvision>=0.19")
	$(BIN)/python -m pip install -q -r requirements.txt
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "$(abspath $(BIN))/nbstripout --keep-id" ; \
	  git config filter.nbstripout.smudge cat ; \
	  git config diff.ipynb.textconv "$(abspath $(BIN))/nbstripout -t" ; fi
	touch $(STAMP)

# Execute every notebook once, in a fresh copy under $(STAGE), writing outputs (and widget state) into the copies
# for the site build. Exercise sources are proved by the unit tests (tests/test_exercise_proofs.py) instead.
execute: $(STAMP)
	$(BIN)/python tools/stage_book.py --fresh
	$(BIN)/pytest --nbmake --overwrite --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider \
	  --ignore=$(STAGE)/exercises/source $(addprefix $(STAGE)/,$(NOTEBOOKS))

# MathJax, require.js and the widget embedder from npm into the git-ignored _vendor/ (no CDN in the site).
vendor: $(STAMP)
	$(BIN)/python tools/vendor.py

# Build the site from the staged copy (executed notebooks kept; other files refreshed) into _build/html.
site: $(STAMP) vendor
	$(BIN)/python tools/stage_book.py
	$(BIN)/jupyter-book build $(STAGE) --path-output . -W -n --keep-going

book: execute site
	@echo
	@echo "The site is in _build/html. Read it with:"
	@echo "  $(BIN)/python -m http.server -d _build/html 8000   # then open http://127.0.0.1:8000"

unit: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/site

site-test: $(STAMP)
	SITE_TEST_REQUIRED=1 $(BIN)/pytest tests/site

test: unit execute site site-test
	@echo "make test: all stages passed"

lab: $(STAMP)
	$(BIN)/jupyter lab chapters exercises

exercises: $(STAMP)
	$(BIN)/cnnkit exercises

proofs: $(STAMP)
	$(BIN)/cnnkit prove

bench: $(STAMP)
	$(BIN)/python benchmarks/conv.py
	$(BIN)/python benchmarks/notebooks.py

strip: $(STAMP)
	$(BIN)/nbstripout --keep-id chapters/*.ipynb exercises/*.ipynb

# After changing repository.url or repository.branch in _config.yml (the one setting).
sync-repo: $(STAMP)
	$(BIN)/python -m cnnkit.course --sync

check-repo: $(STAMP)
	$(BIN)/python -m cnnkit.course --remote

clean:
	rm -rf _build .pytest_cache
