# Sequence models: a DenseShift MPS-LSTM on the spoken-intent task, compiled for the PE array
# and run on the golden model and the RTL (docs/training.md, "Sequence models").
LSTM_RANK     ?= 8
LSTM_HIDDEN   ?= 64
LSTM_EPOCHS   ?= 0
LSTM_FLOAT_EPOCHS ?= 25
LSTM_RTL_LIMIT ?= 10

.PHONY: e2e-lstm

$(E2E_DIR)/intents-lstm.pt: | setup
	@mkdir -p $(E2E_DIR)
	$(DENSEHW) seq train --out $@ --rank $(LSTM_RANK) --hidden $(LSTM_HIDDEN) --wbits 3 \
	  --epochs $(LSTM_EPOCHS) --float-epochs $(LSTM_FLOAT_EPOCHS) --seed $(E2E_SEED) --data intents

# Golden: every test utterance; RTL: the first LSTM_RTL_LIMIT, every GEMM compared with golden.
e2e-lstm: setup $(E2E_DIR)/intents-lstm.pt
	$(DENSEHW) seq compile $(E2E_DIR)/intents-lstm.pt -o $(E2E_DIR)/intents-lstm.prog --config $(E2E_CONFIG)
	$(DENSEHW) seq run $(E2E_DIR)/intents-lstm.prog --data intents --backend golden \
	  --report $(E2E_DIR)/report-lstm-golden.json
	@rm -f $(E2E_DIR)/report-lstm-$(E2E_RTL).json; \
	$(DENSEHW) seq run $(E2E_DIR)/intents-lstm.prog --data intents --backend $(E2E_RTL) \
	  --limit $(LSTM_RTL_LIMIT) --report $(E2E_DIR)/report-lstm-$(E2E_RTL).json; rc=$$?; \
	if [ $$rc = 3 ]; then \
	  echo "e2e-lstm: RTL part SKIPPED: the '$(E2E_RTL)' backend is not available here"; \
	elif [ $$rc != 0 ]; then \
	  echo "e2e-lstm: RTL run on $(E2E_RTL) FAILED (exit $$rc)" >&2; exit $$rc; \
	fi
	@$(PY) -c "import sys; from densehw.cmd_run import summarize; \
	  sys.exit(summarize(['$(E2E_DIR)/report-lstm-golden.json', '$(E2E_DIR)/report-lstm-$(E2E_RTL).json'], title='e2e-lstm'))"
