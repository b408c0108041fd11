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
	.venv-blender/bin/python -m pytest tests/test_blender_job.py tests/test_blender_addon.py -q
