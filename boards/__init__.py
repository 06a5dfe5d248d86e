"""Synthesis and place-and-route flows (Yosys / nextpnr through YoWASP)."""
