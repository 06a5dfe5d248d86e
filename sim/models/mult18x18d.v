// Behavioural model of the Lattice ECP5 MULT18X18D multiplier block, for simulating the
// baselines built with boards/mult18x18d.py (Yosys ships MULT18X18D only as a black box).
// It covers what that wrapper uses, after Lattice TN1267 (ECP5 sysDSP usage guide): an
// unsigned 18x18 product (SIGNEDA = SIGNEDB = 0, SOURCEA = SOURCEB = 0), the input registers A
// and B and the output register each either bypassed (NONE) or on CLK0 with CE0 and RST0
// (synchronous reset), the pipeline register bypassed. Other settings stop the simulation.
`timescale 1ns/1ps
module MULT18X18D (
  input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
  input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
  output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
  output P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED";
  parameter CAS_MATCH_REG = "FALSE";

  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  reg [17:0] a_reg = 0, b_reg = 0;
  reg [35:0] p_reg = 0;

  localparam REG_A = REG_INPUTA_CLK == "CLK0";
  localparam REG_B = REG_INPUTB_CLK == "CLK0";
  localparam REG_P = REG_OUTPUT_CLK == "CLK0";

  wire [17:0] a_in = REG_A ? a_reg : a;
  wire [17:0] b_in = REG_B ? b_reg : b;
  wire [35:0] product = a_in * b_in;
  wire [35:0] p = REG_P ? p_reg : product;

  initial begin
    if ((REG_INPUTA_CLK != "NONE" && !REG_A) || (REG_INPUTB_CLK != "NONE" && !REG_B)
        || (REG_OUTPUT_CLK != "NONE" && !REG_P) || REG_PIPELINE_CLK != "NONE"
        || REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_OUTPUT_CE != "CE0"
        || REG_INPUTA_RST != "RST0" || REG_INPUTB_RST != "RST0" || REG_OUTPUT_RST != "RST0"
        || RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED") begin
      $display("MULT18X18D model: unsupported configuration in %m");
      $finish;
    end
  end

  always @(posedge CLK0) begin
    if (SIGNEDA !== 1'b0 || SIGNEDB !== 1'b0 || SOURCEA !== 1'b0 || SOURCEB !== 1'b0) begin
      $display("MULT18X18D model: signed or shifted operands are not modelled (%m)");
      $finish;
    end
    if (RST0) begin
      a_reg <= 0;
      b_reg <= 0;
      p_reg <= 0;
    end else if (CE0) begin
      a_reg <= a;
      b_reg <= b;
      p_reg <= product;
    end
  end

  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
          P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
          P0} = p;
endmodule
