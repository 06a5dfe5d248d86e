// Behavioural model of the Lattice ECP5 DP16KD block RAM, for simulating the generated array
// with `family="ecp5"` (Yosys ships DP16KD only as a black box). It covers what
// hw/wstore.py uses, after Lattice TN1264: equal data widths on both ports (1, 2, 4, 9 or
// 18 bits; the address sits in the top pins, ADx13 down to ADx(log2(18 Kbit / depth))),
// REGMODE NOREG or OUTREG, WRITEMODE NORMAL (a write leaves the port's output alone),
// synchronous RST of the output, CE and OCE, contents zero after configuration. Other settings stop the simulation.
`timescale 1ns/1ps
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
  input DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
  output DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
  input DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
  output DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "AUTO";

  localparam W = DATA_WIDTH_A;
  localparam LOW = W == 1 ? 0 : W == 2 ? 1 : W == 4 ? 2 : W == 9 ? 3 : 4;

  initial begin
    if (DATA_WIDTH_A != DATA_WIDTH_B || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18)
        || WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL" || RESETMODE != "SYNC"
        || CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin
      $display("DP16KD model: unsupported parameters");
      $finish;
    end
  end

  reg [17:0] mem [0:(16384 >> LOW) - 1];
  integer i;
  initial for (i = 0; i < (16384 >> LOW); i = i + 1) mem[i] = 0;   // INITVAL_xx default
  // the two ports, index 0 = A and 1 = B, are the same logic
  wire [13:0] ad [0:1];
  wire [17:0] di [0:1];
  wire [1:0] clk = {CLKB, CLKA}, ce = {CEB, CEA}, oce = {OCEB, OCEA}, we = {WEB, WEA};
  wire [1:0] rst = {RSTB, RSTA};
  wire [1:0] sel = {CSB0 == 1'b0 && CSB1 == 1'b0 && CSB2 == 1'b0,
                    CSA0 == 1'b0 && CSA1 == 1'b0 && CSA2 == 1'b0};
  assign ad[0] = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
                  ADA1, ADA0};
  assign ad[1] = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
                  ADB1, ADB0};
  assign di[0] = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                  DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  assign di[1] = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                  DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [17:0] mask = (18'h1 << W) - 1;
  reg [17:0] rd [0:1];       // the read latch of each port
  reg [17:0] oreg [0:1];     // its output register
  wire [17:0] dout [0:1];
  genvar p;
  generate
    for (p = 0; p < 2; p = p + 1) begin : port
      // in the 18-bit mode the two lowest address pins are byte write enables
      wire [17:0] be = W == 18 ? {{9{ad[p][1]}}, {9{ad[p][0]}}} : 18'h3ffff;
      wire [13:0] addr = ad[p] >> LOW;
      initial begin rd[p] = 0; oreg[p] = 0; end
      always @(posedge clk[p]) begin
        if (ce[p] && sel[p]) begin
          if (we[p])
            mem[addr] <= (mem[addr] & ~(be & mask)) | (di[p] & be & mask);
          else
            rd[p] <= mem[addr] & mask;
        end
        if (rst[p]) begin rd[p] <= 0; oreg[p] <= 0; end
        else if (oce[p]) oreg[p] <= rd[p];
      end
      assign dout[p] = (p == 0 ? REGMODE_A : REGMODE_B) == "OUTREG" ? oreg[p] : rd[p];
    end
  endgenerate
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = dout[0];
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = dout[1];
endmodule
