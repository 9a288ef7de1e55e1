# voicefake: `make demo` launches the Gradio demo, `make test` runs the test suite.
# Both create (once) a virtual environment outside the clone, keyed on the dependency files,
# so later runs and CI reuse it instead of reinstalling torch.

PYTHON ?= python3
DEPS_KEY := $(shell cat requirements.txt requirements-dev.txt | $(PYTHON) -c "import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()+sys.version.encode()).hexdigest()[:16])")
VENV ?= $(HOME)/.cache/voicefake/venv-$(DEPS_KEY)
BIN := $(VENV)/bin
VOICEFAKE_DATA ?= $(abspath ../shared/data)
HOST ?= 127.0.0.1
PORT ?= 7860
PYTEST_ARGS ?= -n 2 -q

export VOICEFAKE_DATA
export OMP_NUM_THREADS ?= 1
export GRADIO_ANALYTICS_ENABLED = False
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv develop sysdeps textdeps test demo lint bench clean-venv

venv: $(VENV)/.installed

# no file prerequisites: the venv path already carries the dependency files' hash, and a
# fresh clone's file times must not force a reinstall
$(VENV)/.installed:
	@echo "creating $(VENV) (first run only: about 3 minutes)"
	rm -rf "$(VENV)"
	$(PYTHON) -m venv "$(VENV)"
	"$(BIN)/pip" install -q --upgrade "pip>=23"
	"$(BIN)/pip" install -q -r requirements.txt -r requirements-dev.txt
	touch "$@"

develop: venv
	@"$(BIN)/pip" install -q --no-deps --no-build-isolation -e . > "$(VENV)/develop.log" 2>&1 \
		|| { cat "$(VENV)/develop.log"; exit 1; }

# apt_once PROGRAM,PACKAGE,WHAT FOR,WITHOUT IT: installs a Debian package once when run as root
# with apt-get, and otherwise prints a note saying what works differently without it
define apt_once
@command -v $(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    echo "installing $(2) $(3) (once)"; \
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2)) \
      >/dev/null 2>&1 || echo "note: could not install $(2); $(4)"; \
  else echo "note: $(2) is not installed; $(4) (sudo apt-get install $(2))"; fi; }
endef

# Debian's flite, the English text front end of `voicefake clone` (without it English text is
# spoken by espeak-ng, whose clones keep far fewer words; docs/benchmarks/cloning.md, session 15)
textdeps:
	$(call apt_once,flite,flite,for English text to speech,English text to speech will use espeak-ng)

# Debian's chromium, for the browser test of the demo (skipped, with a note, where it cannot be installed)
sysdeps: textdeps
	$(call apt_once,chromium,chromium,for the browser test,the browser test will skip)

test: develop sysdeps
	"$(BIN)/python" -m pytest $(PYTEST_ARGS)

demo: develop textdeps
	"$(BIN)/python" demo/app.py --host $(HOST) --port $(PORT)

lint: develop
	"$(BIN)/ruff" check voicefake tests recipes demo benchmarks
	"$(BIN)/mypy" voicefake

bench: develop
	@echo "see docs/BENCHMARKS.md for each benchmark's command"

clean-venv:
	rm -rf "$(VENV)"
