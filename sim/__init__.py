"""cocotb co-simulation of the generated Verilog against the golden model."""
