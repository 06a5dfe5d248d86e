// Result sink standing in for a DMA write engine: stores every accepted {tlast, tdata} beat
// in a RAM (the first DEPTH beats; read port for the host) and counts all of them. `enable` low drops tready for a clock.
module soc_res_sink #(
    parameter WIDTH = 16,
    parameter DEPTH = 256,
    parameter AW = $clog2(DEPTH)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             restart,
    input  wire             enable,
    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tlast,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    input  wire [AW-1:0]    rd_addr,
    output wire [WIDTH:0]   rd_data,
    output reg  [31:0]      count
);
    reg [WIDTH:0] ram [0:DEPTH-1];

    assign s_axis_tready = enable && !restart;
    assign rd_data = ram[rd_addr];

    always @(posedge clk) begin
        if (rst || restart) begin
            count <= 32'd0;
        end else if (s_axis_tvalid && s_axis_tready) begin
            if (count < DEPTH)
                ram[count[AW-1:0]] <= {s_axis_tlast, s_axis_tdata};
            count <= count + 32'd1;
        end
    end
endmodule
