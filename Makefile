ADDON_DIR := plugins/blender_vse
ADDON_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(ADDON_DIR)/blender_manifest.toml)
ADDON_ZIP := dist/vbgm_blender-$(ADDON_VERSION).zip

.PHONY: blender-addon test-blender

# Installable Blender extension (Blender 4.2+: Edit > Preferences > Get Extensions > Install from Disk).
blender-addon:
	mkdir -p dist
	rm -f $(ADDON_ZIP).tmp
	cd $(ADDON_DIR) && python3 -m zipfile -c $(CURDIR)/$(ADDON_ZIP).tmp blender_manifest.toml *.py
	mv $(ADDON_ZIP).tmp $(ADDON_ZIP)
	@echo "built $(ADDON_ZIP)"

# The add-on with real bpy, and its job runner, against the real vbgm CLI.
test-blender:
	scripts/setup_blender_venv.sh
	.venv-blender/bin/python -m pytest tests/test_blender_*.py -q

.PHONY: setup score test test-core test-numerics test-moviepy1

setup:
	scripts/setup.sh --dev

# The main job: score the bundled sample clip with the bundled model.
score:
	scripts/setup.sh
	mkdir -p out
	.venv/bin/vbgm score examples/media/bigbuckbunny.mp4 -o out/bigbuckbunny_scored.mp4 \
		--wav out/bigbuckbunny_score.wav --midi out/bigbuckbunny_score.mid \
		--report out/bigbuckbunny_report.json --plot out/bigbuckbunny_score.png --overwrite

# Everything: the fast-transformers backend (required, not skipped, here), the core suite, the
# float-sensitive tests under other arithmetic, real Blender (bpy) and MoviePy 1.0.3, each in
# its own venv. Every step runs whatever the others do; a summary says which failed, and the
# exit status is non-zero if any did.
TEST_SUITES := install-fast-transformers test-core test-numerics test-blender test-moviepy1

test: setup
	@failed=""; \
	for suite in $(TEST_SUITES); do \
	    echo "make test: $$suite"; \
	    VBGM_REQUIRE_FAST=1 $(MAKE) --no-print-directory $$suite || failed="$$failed $$suite"; \
	done; \
	echo "make test: summary"; \
	for suite in $(TEST_SUITES); do \
	    case " $$failed " in \
	        *" $$suite "*) echo "  FAILED  $$suite" ;; \
	        *) echo "  passed  $$suite" ;; \
	    esac; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed"; exit 1; fi

.PHONY: install-fast-transformers
install-fast-transformers:
	scripts/install_fast_transformers.sh .venv/bin/python

# The core suite (tests/test_numerics_portable.py runs as its own suite below).
test-core:
	.venv/bin/python -m pytest -q --ignore=tests/test_numerics_portable.py

# The float-sensitive tests again under other BLAS kernels, vector units and thread counts
# (about a minute): tolerances that hold only on this CPU fail here.
test-numerics:
	.venv/bin/python -m pytest -q tests/test_numerics_portable.py

test-moviepy1:
	scripts/setup_moviepy1_venv.sh
	.venv-moviepy1/bin/python -m pytest tests/test_moviepy1.py -q
