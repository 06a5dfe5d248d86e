"""The multi-branch {-1, +1} PE array: xnor-popcount PEs, weight loader, finalizer, AXI top
(``docs/branches.md``)."""
