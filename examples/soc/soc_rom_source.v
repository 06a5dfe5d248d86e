// Stream source standing in for a DMA engine: plays LENGTH words of {tlast, tdata} from a ROM
// (initialised with $readmemh from FILE, one hex word per line, tlast in the top bit) into a
// FIFO, starting at `restart`. `enable` low holds the source back for a clock (throttling);
// the AXI4-Stream side is the FIFO's output, whose valid never drops before the handshake.
module soc_rom_source #(
    parameter WIDTH = 32,
    parameter LENGTH = 1,
    parameter FILE = "stream.hex"
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             restart,
    input  wire             enable,
    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tlast,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready
);
    localparam AW = (LENGTH > 1) ? $clog2(LENGTH + 1) : 1;
    reg [WIDTH:0] rom [0:LENGTH-1];
    initial $readmemh(FILE, rom);

    reg [AW:0] index;
    reg armed;
    wire more = armed && (index < LENGTH[AW:0]);
    wire fifo_ready;

    always @(posedge clk) begin
        if (rst) begin
            index <= 0;
            armed <= 1'b0;
        end else if (restart) begin
            index <= 0;
            armed <= 1'b1;
        end else if (more && enable && fifo_ready) begin
            index <= index + 1'b1;
        end
    end

    soc_axis_fifo #(.WIDTH(WIDTH + 1), .DEPTH_LOG2(2)) fifo (
        .clk(clk), .rst(rst || restart),
        .s_data(rom[index[AW-1:0]]), .s_valid(more && enable), .s_ready(fifo_ready),
        .m_data({m_axis_tlast, m_axis_tdata}), .m_valid(m_axis_tvalid),
        .m_ready(m_axis_tready)
    );
endmodule
