# make demo : install (once) and run the whole chain on a synthetic video with the tiny model
# make test : install (once) and run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean-demo

install: $(STAMP)

# Reinstalls only when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash tools/demo.sh

test: $(STAMP)
	$(PY) -m pytest tests -q -n 2 --dist worksteal

clean-demo:
	rm -rf data/demo output/demo recon_data/demo recon_out/demo
