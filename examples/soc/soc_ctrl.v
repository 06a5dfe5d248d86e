`include "densehw_params.vh"
// AXI4-Lite manager standing in for the SoC's CPU: on `go` it programs one layer into the
// array's register block (N, K, M, E0, then CTRL with START), polls STATUS until DONE or ERROR
// and reads the CYCLES_BUSY counter. Register offsets and bit masks come from the generated
// densehw_params.vh, so this code follows the register map of whatever array was generated.
module soc_ctrl (
    input  wire        clk,
    input  wire        rst,
    input  wire        go,
    input  wire [31:0] layer_n,
    input  wire [31:0] layer_k,
    input  wire [31:0] layer_m,
    input  wire [31:0] layer_e0,
    input  wire [31:0] layer_opts,     // CTRL options (RELU, BIAS_EN, E0_PER_CHANNEL)
    output reg         busy,
    output reg         done,
    output reg  [31:0] status,
    output reg  [31:0] cycles_busy,
    // AXI4-Lite manager
    output reg  [7:0]  awaddr,
    output reg         awvalid,
    input  wire        awready,
    output reg  [31:0] wdata,
    output wire [3:0]  wstrb,
    output reg         wvalid,
    input  wire        wready,
    input  wire [1:0]  bresp,
    input  wire        bvalid,
    output reg         bready,
    output reg  [7:0]  araddr,
    output reg         arvalid,
    input  wire        arready,
    input  wire [31:0] rdata,
    input  wire [1:0]  rresp,
    input  wire        rvalid,
    output reg         rready
);
    localparam S_IDLE = 3'd0, S_WRITE = 3'd1, S_RESP = 3'd2, S_ADDR = 3'd3, S_READ = 3'd4;
    localparam [31:0] FINISHED = `DENSEHW_STATUS_DONE_MASK | `DENSEHW_STATUS_ERROR_MASK;

    reg [2:0] state;
    reg [2:0] step;          // register being written: N, K, M, E0, CTRL
    reg reading_counter;     // the read in flight is CYCLES_BUSY (else STATUS)

    assign wstrb = 4'hF;
    // responses are always OKAY; the array reports problems in STATUS/ERROR
    wire unused_resp = ^{bresp, rresp};

    task start_write;
        input [7:0] addr;
        input [31:0] data;
        begin
            awaddr <= addr;
            wdata <= data;
            awvalid <= 1'b1;
            wvalid <= 1'b1;
            state <= S_WRITE;
        end
    endtask

    task start_read;
        input [7:0] addr;
        begin
            araddr <= addr;
            arvalid <= 1'b1;
            state <= S_ADDR;
        end
    endtask

    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            step <= 3'd0;
            reading_counter <= 1'b0;
            busy <= 1'b0;
            done <= 1'b0;
            status <= 32'd0;
            cycles_busy <= 32'd0;
            awaddr <= 8'd0;
            awvalid <= 1'b0;
            wdata <= 32'd0;
            wvalid <= 1'b0;
            bready <= 1'b0;
            araddr <= 8'd0;
            arvalid <= 1'b0;
            rready <= 1'b0;
        end else begin
            case (state)
            S_IDLE:
                if (go) begin
                    busy <= 1'b1;
                    done <= 1'b0;
                    step <= 3'd0;
                    start_write(`DENSEHW_REG_N, layer_n);
                end
            S_WRITE: begin
                // address and data may be taken in different clocks
                if (awready) awvalid <= 1'b0;
                if (wready) wvalid <= 1'b0;
                if ((awready || !awvalid) && (wready || !wvalid)) begin
                    bready <= 1'b1;
                    state <= S_RESP;
                end
            end
            S_RESP:
                if (bvalid) begin
                    bready <= 1'b0;
                    step <= step + 3'd1;
                    case (step)
                    3'd0: start_write(`DENSEHW_REG_K, layer_k);
                    3'd1: start_write(`DENSEHW_REG_M, layer_m);
                    3'd2: start_write(`DENSEHW_REG_E0, layer_e0);
                    3'd3: start_write(`DENSEHW_REG_CTRL, layer_opts | `DENSEHW_CTRL_START_MASK);
                    default: begin
                        reading_counter <= 1'b0;
                        start_read(`DENSEHW_REG_STATUS);
                    end
                    endcase
                end
            S_ADDR:
                if (arready) begin
                    arvalid <= 1'b0;
                    rready <= 1'b1;
                    state <= S_READ;
                end
            S_READ:
                if (rvalid) begin
                    rready <= 1'b0;
                    if (reading_counter) begin
                        cycles_busy <= rdata;
                        busy <= 1'b0;
                        done <= 1'b1;
                        state <= S_IDLE;
                    end else begin
                        status <= rdata;
                        reading_counter <= (rdata & FINISHED) != 32'd0;
                        start_read(((rdata & FINISHED) != 32'd0) ? `DENSEHW_REG_CYCLES_BUSY
                                                                   : `DENSEHW_REG_STATUS);
                    end
                end
            default:
                state <= S_IDLE;
            endcase
        end
    end
endmodule
