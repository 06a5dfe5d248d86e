# Formal proofs (SymbiYosys / Yosys sat through YoWASP, z3): docs/formal.md.
.PHONY: formal
formal: setup
	@$(call run_pytest,tests/test_formal.py tests/test_formal_finalizer.py tests/test_formal_branches.py -m "slow or not slow")
