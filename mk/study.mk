# The block-RAM accumulator study (studies/bin_accumulator/README.md): not part of `make test`.
.PHONY: study
study: setup
	@$(call run_pytest,studies/bin_accumulator -m "study and not slow")
