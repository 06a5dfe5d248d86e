# Formal proofs (SymbiYosys / Yosys sat through YoWASP, z3): docs/formal.md.
.PHONY: formal
formal: setup
	@$(call run_pytest,tests/test_formal_*.py -m "slow or not slow")
