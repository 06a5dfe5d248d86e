"""The densehw command line: the top of the stack (imports contract, sw, hw and sim)."""
