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

.PHONY: setup score test test-core test-moviepy1

setup:
	scripts/setup.sh --dev

# The main job: score the bundled sample clip with the bundled model.
score:
	scripts/setup.sh
	mkdir -p out
	.venv/bin/vbgm score examples/media/bigbuckbunny.mp4 -o out/bigbuckbunny_scored.mp4 \
		--wav out/bigbuckbunny_score.wav --midi out/bigbuckbunny_score.mid \
		--report out/bigbuckbunny_report.json --plot out/bigbuckbunny_score.png --overwrite

# Everything: the core suite, the fast-transformers backend (required, not skipped, here), real
# Blender (bpy) and MoviePy 1.0.3, each in its own venv.
test: setup
	scripts/install_fast_transformers.sh .venv/bin/python
	VBGM_REQUIRE_FAST=1 $(MAKE) test-core test-blender test-moviepy1

test-core:
	.venv/bin/python -m pytest -q

test-moviepy1:
	scripts/setup_moviepy1_venv.sh
	.venv-moviepy1/bin/python -m pytest tests/test_moviepy1.py -q
