`timescale 1ns/1ps
`include "densehw_params.vh"
// Self-checking testbench of soc_top: runs one layer and compares every result beat
// ({tlast, tdata}) with the expected words in EXP_FILE (computed by the golden model).
// The layer and the files are given by tb_params.vh (written by tests/test_soc_example.py):
// TB_N, TB_K, TB_M, TB_E0, TB_OPTS, TB_WGT_FILE, TB_ACT_FILE, TB_EXP_FILE, TB_OUT_FILE,
// TB_WGT_WORDS, TB_ACT_BEATS, TB_RES_BEATS, TB_THROTTLE, TB_TIMEOUT.
// Prints "TB PASS ..." or "TB FAIL ..." and writes the received beats to TB_OUT_FILE.
`include "tb_params.vh"
module tb_soc;
    localparam RES_W = `DENSEHW_RES_TDATA_WIDTH;
    localparam RES_AW = $clog2(`TB_RES_BEATS + 1);

    reg clk = 1'b0;
    reg rst = 1'b1;
    reg go = 1'b0;
    reg [RES_AW-1:0] res_addr = 0;
    wire busy, done;
    wire [31:0] status, cycles_busy, res_count;
    wire [RES_W:0] res_data;
    reg [RES_W:0] expected [0:`TB_RES_BEATS-1];
    integer i, mismatches, cycles, fd;

    always #5 clk = ~clk;

    soc_top #(
        .WGT_FILE(`TB_WGT_FILE), .ACT_FILE(`TB_ACT_FILE), .WGT_WORDS(`TB_WGT_WORDS),
        .ACT_BEATS(`TB_ACT_BEATS), .RES_DEPTH(`TB_RES_BEATS + 1), .RES_AW(RES_AW),
        .THROTTLE(`TB_THROTTLE)
    ) dut (
        .clk(clk), .rst(rst), .go(go),
        .layer_n(`TB_N), .layer_k(`TB_K), .layer_m(`TB_M), .layer_e0(`TB_E0),
        .layer_opts(`TB_OPTS),
        .busy(busy), .done(done), .status(status), .cycles_busy(cycles_busy),
        .res_count(res_count), .res_addr(res_addr), .res_data(res_data)
    );

    initial begin
        $readmemh(`TB_EXP_FILE, expected);
        repeat (4) @(posedge clk);
        rst <= 1'b0;
        @(posedge clk);
        go <= 1'b1;
        @(posedge clk);
        go <= 1'b0;
        cycles = 0;
        while (!done && cycles < `TB_TIMEOUT) begin
            @(posedge clk);
            cycles = cycles + 1;
        end
        // a few more clocks: nothing further may arrive
        repeat (16) @(posedge clk);
        mismatches = 0;
        fd = $fopen(`TB_OUT_FILE, "w");
        for (i = 0; i < `TB_RES_BEATS; i = i + 1) begin
            res_addr = i;
            #1;
            $fdisplay(fd, "%h", res_data);
            if (res_data !== expected[i]) begin
                if (mismatches < 10)
                    $display("TB MISMATCH beat %0d: got %h expected %h", i, res_data,
                             expected[i]);
                mismatches = mismatches + 1;
            end
        end
        $fclose(fd);
        if (!done)
            $display("TB FAIL timeout after %0d clocks (status %h, %0d beats)", cycles, status,
                     res_count);
        else if (mismatches != 0 || res_count != `TB_RES_BEATS
                 || (status & `DENSEHW_STATUS_ERROR_MASK) != 0)
            $display("TB FAIL mismatches %0d beats %0d status %h cycles_busy %0d", mismatches,
                     res_count, status, cycles_busy);
        else
            $display("TB PASS beats %0d status %h cycles_busy %0d clocks %0d", res_count, status,
                     cycles_busy, cycles);
        $finish;
    end
endmodule
