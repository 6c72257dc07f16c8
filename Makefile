# Hands-On CNNs. `make book` builds the site, `make test` runs the whole suite. Needs only Python 3.10+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := chapters exercises
NBMAKE_TIMEOUT ?= 400
export PYTHONUNBUFFERED := 1

.PHONY: help venv vendor book execute site test unit notebooks proofs site-test lab exercises bench strip clean

help:
	@echo "make book       set up .venv, execute every notebook once, build the site into _build/html"
	@echo "make test       the whole suite: unit tests, notebooks, grader proofs, -W site build, browser test"
	@echo "make lab        open the notebooks in JupyterLab"
	@echo "make exercises  regenerate student notebooks and solution pages from exercises/source/*.ipynb"
	@echo "make proofs     prove every exercise: solution full marks, student zero, wrong cells fail"
	@echo "make bench      measure notebook run times and conv speed (writes benchmarks/results/)"
	@echo "make strip      remove outputs from the notebooks in the working tree"
	@echo "make clean      remove _build and caches (keeps .venv)"

venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "$(abspath $(BIN))/nbstripout --keep-id" ; \
	  git config filter.nbstripout.smudge cat ; \
	  git config diff.ipynb.textconv "$(abspath $(BIN))/nbstripout -t" ; fi
	touch $(STAMP)

# Execute every notebook once, writing outputs (and widget state) into them for the site build.
execute: $(STAMP)
	$(BIN)/pytest --nbmake --overwrite --nbmake-timeout=$(NBMAKE_TIMEOUT) -p no:cacheprovider --ignore=exercises/source $(NOTEBOOKS)

# MathJax, require.js and the widget embedder from npm into the git-ignored _vendor/ (no CDN in the site).
vendor: $(STAMP)
	$(BIN)/python tools/vendor.py

site: $(STAMP) vendor
	$(BIN)/jupyter-book build . -W -n --keep-going

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

clean:
	rm -rf _build .pytest_cache
