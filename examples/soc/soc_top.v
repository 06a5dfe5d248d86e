`include "densehw_params.vh"
// Example SoC-style wrapper of the generated PE array `densehw_array` (plain Verilog-2005).
//
//   soc_ctrl (AXI4-Lite manager, stands in for the CPU) ----------> s_axil
//   soc_rom_source (weights ROM -> FIFO, stands in for DMA) -----> s_axis_wgt
//   soc_rom_source (activations ROM -> FIFO) --------------------> s_axis_act
//   m_axis_res ---------------------------------------------------> soc_res_sink (RAM)
//
// Widths and register offsets come from the generated densehw_params.vh, so the wrapper fits
// any generated configuration. The ROM files hold one {tlast, tdata} word per line in stream
// order (contract.array.weight_stream / activation_stream). THROTTLE != 0 gates both sources
// and the result sink's tready with a pseudo-random sequence (about 1 clock in 2) to exercise
// backpressure on every stream.
module soc_top #(
    parameter WGT_FILE = "wgt.hex",
    parameter ACT_FILE = "act.hex",
    parameter WGT_WORDS = 1,
    parameter ACT_BEATS = 1,
    parameter RES_DEPTH = 256,
    parameter RES_AW = $clog2(RES_DEPTH),
    parameter THROTTLE = 0
) (
    input  wire                              clk,
    input  wire                              rst,
    input  wire                              go,           // pulse: run one layer
    input  wire [31:0]                       layer_n,
    input  wire [31:0]                       layer_k,
    input  wire [31:0]                       layer_m,
    input  wire [31:0]                       layer_e0,
    input  wire [31:0]                       layer_opts,   // CTRL options
    output wire                              busy,
    output wire                              done,
    output wire                              irq,          // the array's interrupt (IRQ_EN
                                                           // stays 0 here: soc_ctrl polls)
    output wire [31:0]                       status,       // last STATUS read
    output wire [31:0]                       cycles_busy,  // CYCLES_BUSY after the layer
    output wire [31:0]                       res_count,    // result beats received
    input  wire [RES_AW-1:0]                 res_addr,
    output wire [`DENSEHW_RES_TDATA_WIDTH:0] res_data      // {tlast, tdata}
);
    localparam ACT_W = `DENSEHW_ACT_TDATA_WIDTH;
    localparam WGT_W = `DENSEHW_WGT_TDATA_WIDTH;
    localparam RES_W = `DENSEHW_RES_TDATA_WIDTH;

    // -- throttling: a 16-bit maximal-length LFSR ----------------------------------------------
    reg [15:0] lfsr;
    always @(posedge clk) begin
        if (rst)
            lfsr <= 16'hACE1;
        else
            lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
    end
    wire throttle = (THROTTLE != 0);
    wire en_wgt = !throttle || lfsr[0];
    wire en_act = !throttle || lfsr[5];
    wire en_res = !throttle || lfsr[11];

    // -- AXI4-Lite ------------------------------------------------------------------------------
    wire [7:0]  awaddr, araddr;
    wire [31:0] wdata, rdata;
    wire [3:0]  wstrb;
    wire [1:0]  bresp, rresp;
    wire awvalid, awready, wvalid, wready, bvalid, bready, arvalid, arready, rvalid, rready;

    soc_ctrl ctrl (
        .clk(clk), .rst(rst), .go(go),
        .layer_n(layer_n), .layer_k(layer_k), .layer_m(layer_m), .layer_e0(layer_e0),
        .layer_opts(layer_opts),
        .busy(busy), .done(done), .status(status), .cycles_busy(cycles_busy),
        .awaddr(awaddr), .awvalid(awvalid), .awready(awready),
        .wdata(wdata), .wstrb(wstrb), .wvalid(wvalid), .wready(wready),
        .bresp(bresp), .bvalid(bvalid), .bready(bready),
        .araddr(araddr), .arvalid(arvalid), .arready(arready),
        .rdata(rdata), .rresp(rresp), .rvalid(rvalid), .rready(rready)
    );

    // -- streams --------------------------------------------------------------------------------
    wire [WGT_W-1:0] wgt_tdata;
    wire wgt_tlast, wgt_tvalid, wgt_tready;
    wire [ACT_W-1:0] act_tdata;
    wire act_tlast, act_tvalid, act_tready;
    wire [RES_W-1:0] res_tdata;
    wire res_tlast, res_tvalid, res_tready;

    soc_rom_source #(.WIDTH(WGT_W), .LENGTH(WGT_WORDS), .FILE(WGT_FILE)) wgt_src (
        .clk(clk), .rst(rst), .restart(go), .enable(en_wgt),
        .m_axis_tdata(wgt_tdata), .m_axis_tlast(wgt_tlast), .m_axis_tvalid(wgt_tvalid),
        .m_axis_tready(wgt_tready)
    );

    soc_rom_source #(.WIDTH(ACT_W), .LENGTH(ACT_BEATS), .FILE(ACT_FILE)) act_src (
        .clk(clk), .rst(rst), .restart(go), .enable(en_act),
        .m_axis_tdata(act_tdata), .m_axis_tlast(act_tlast), .m_axis_tvalid(act_tvalid),
        .m_axis_tready(act_tready)
    );

    soc_res_sink #(.WIDTH(RES_W), .DEPTH(RES_DEPTH), .AW(RES_AW)) res_sink (
        .clk(clk), .rst(rst), .restart(go), .enable(en_res),
        .s_axis_tdata(res_tdata), .s_axis_tlast(res_tlast), .s_axis_tvalid(res_tvalid),
        .s_axis_tready(res_tready),
        .rd_addr(res_addr), .rd_data(res_data), .count(res_count)
    );

    // -- the generated accelerator --------------------------------------------------------------
    densehw_array array (
        .clk(clk), .rst(rst),
        .s_axis_act__tdata(act_tdata), .s_axis_act__tvalid(act_tvalid),
        .s_axis_act__tready(act_tready), .s_axis_act__tlast(act_tlast),
        .s_axis_wgt__tdata(wgt_tdata), .s_axis_wgt__tvalid(wgt_tvalid),
        .s_axis_wgt__tready(wgt_tready), .s_axis_wgt__tlast(wgt_tlast),
        .m_axis_res__tdata(res_tdata), .m_axis_res__tvalid(res_tvalid),
        .m_axis_res__tready(res_tready), .m_axis_res__tlast(res_tlast),
        .s_axil__awaddr(awaddr), .s_axil__awvalid(awvalid), .s_axil__awready(awready),
        .s_axil__wdata(wdata), .s_axil__wstrb(wstrb), .s_axil__wvalid(wvalid),
        .s_axil__wready(wready),
        .s_axil__bresp(bresp), .s_axil__bvalid(bvalid), .s_axil__bready(bready),
        .s_axil__araddr(araddr), .s_axil__arvalid(arvalid), .s_axil__arready(arready),
        .s_axil__rdata(rdata), .s_axil__rresp(rresp), .s_axil__rvalid(rvalid),
        .s_axil__rready(rready),
        .irq(irq)
    );
endmodule
