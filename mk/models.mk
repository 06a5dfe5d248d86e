# Bring your own model: the extra packages of model import (ONNX files, torchvision
# architectures), and the ResNet-18 / MobileNetV2 runs (docs/deployment.md).
MODELS_DIR ?= build/models

.PHONY: setup-models help-models

help-models:
	@echo "make setup-models  install requirements-models.txt (onnx, torchvision) into the venv"

setup-models: $(VENV)/.setup-models-done

$(VENV)/.setup-models-done: requirements-models.txt | setup
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-models.txt
	touch $@

# The test suite imports ONNX files and torchvision models.
test test-slow: setup-models
