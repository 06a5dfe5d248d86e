"""Gateware of densehw (Amaranth 0.5). Imports no PyTorch."""
