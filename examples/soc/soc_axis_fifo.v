// Small synchronous FIFO with AXI4-Stream-style handshakes on both sides (first-word
// fall-through: m_valid is high whenever the FIFO holds a word; m_data is stable until taken).
module soc_axis_fifo #(
    parameter WIDTH = 8,
    parameter DEPTH_LOG2 = 2
) (
    input  wire             clk,
    input  wire             rst,
    input  wire [WIDTH-1:0] s_data,
    input  wire             s_valid,
    output wire             s_ready,
    output wire [WIDTH-1:0] m_data,
    output wire             m_valid,
    input  wire             m_ready
);
    localparam DEPTH = 1 << DEPTH_LOG2;
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [DEPTH_LOG2-1:0] rd_ptr, wr_ptr;
    reg [DEPTH_LOG2:0] count;

    wire push = s_valid && s_ready;
    wire pop = m_valid && m_ready;

    assign s_ready = (count != DEPTH[DEPTH_LOG2:0]);
    assign m_valid = (count != 0);
    assign m_data = mem[rd_ptr];

    always @(posedge clk) begin
        if (rst) begin
            rd_ptr <= 0;
            wr_ptr <= 0;
            count <= 0;
        end else begin
            if (push) begin
                mem[wr_ptr] <= s_data;
                wr_ptr <= wr_ptr + 1'b1;
            end
            if (pop)
                rd_ptr <= rd_ptr + 1'b1;
            if (push && !pop)
                count <= count + 1'b1;
            else if (pop && !push)
                count <= count - 1'b1;
        end
    end
endmodule
