# Bring your own model: the extra packages of model import (ONNX files, torchvision
# architectures), and the ResNet-18 / MobileNetV2 runs (docs/deployment.md).
MODELS_DIR ?= build/models

.PHONY: setup-models help-models help-models-run

help-models:
	@echo "make setup-models  install requirements-models.txt (onnx, torchvision) into the venv"

setup-models: $(VENV)/.setup-models-done

$(VENV)/.setup-models-done: requirements-models.txt | setup
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-models.txt
	touch $@

# The test suite imports ONNX files and torchvision models.
test test-slow: setup-models

.PHONY: models
help-models: help-models-run
help-models-run:
	@echo "make models        digits ResNet, ResNet-18 and MobileNetV2 (32x32, 224x224) through export ->"
	@echo "                   compile -> run (golden, Verilator tiles), golden vs PyTorch fp32 and fp16"
	@echo "                   -> $(MODELS_DIR)/models.{json,md} (~20 min)"

models: setup setup-models
	$(PY) benchmarks/models.py --out $(MODELS_DIR) $(MODELS_ARGS)
