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
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                     ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                     ADB2, ADB1, ADB0};
  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                     DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                     DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [17:0] mask = (18'h1 << W) - 1;
  // in the 18-bit mode the two lowest address pins are byte write enables
  wire [17:0] bea = W == 18 ? {{9{ADA1}}, {9{ADA0}}} : 18'h3ffff;
  wire [17:0] beb = W == 18 ? {{9{ADB1}}, {9{ADB0}}} : 18'h3ffff;
  wire sela = CSA0 == 1'b0 && CSA1 == 1'b0 && CSA2 == 1'b0;
  wire selb = CSB0 == 1'b0 && CSB1 == 1'b0 && CSB2 == 1'b0;

  reg [17:0] ra = 0, rb = 0, oa = 0, ob = 0;
  always @(posedge CLKA) begin
    if (CEA && sela) begin
      if (WEA)
        mem[ada >> LOW] <= (mem[ada >> LOW] & ~(bea & mask)) | (dia & bea & mask);
      else
        ra <= mem[ada >> LOW] & mask;
    end
    if (RSTA) begin ra <= 0; oa <= 0; end
    else if (OCEA) oa <= ra;
  end
  always @(posedge CLKB) begin
    if (CEB && selb) begin
      if (WEB)
        mem[adb >> LOW] <= (mem[adb >> LOW] & ~(beb & mask)) | (dib & beb & mask);
      else
        rb <= mem[adb >> LOW] & mask;
    end
    if (RSTB) begin rb <= 0; ob <= 0; end
    else if (OCEB) ob <= rb;
  end
  wire [17:0] doa = REGMODE_A == "OUTREG" ? oa : ra;
  wire [17:0] dob = REGMODE_B == "OUTREG" ? ob : rb;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
