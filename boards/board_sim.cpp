// Simulated board image: the Verilog of boards.boards.LinkTop (design + UART bridge), compiled by
// Verilator, with its UART pins connected to a pseudo-terminal. Built and started by
// boards/board_sim.py; a host opens the printed terminal like a USB serial port.
//
//   board_sim DIVISOR      clock cycles per UART bit (the LinkTop's divisor)
//
// Prints "PTY <path>" on stdout once the terminal is ready, then runs until SIGTERM/SIGINT (or
// until its parent exits). Bytes the host writes are sent to `rx` as 8N1 frames of DIVISOR
// clocks per bit; 8N1 frames on `tx` are decoded (sampled mid-bit) and written back. Virtual time
// only advances while simulating: when nothing moved on the UART for IDLE_CYCLES clocks, the loop
// sleeps in poll() until the host writes (so an idle board costs no CPU).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>

#include "verilated.h"
#include VTOP_HEADER

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int) { g_stop = 1; }

static const long IDLE_CYCLES = 50000;
static const long POLL_EVERY = 64;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIVISOR\n", argv[0]);
        return 2;
    }
    const long div = std::strtol(argv[1], nullptr, 10);
    if (div < 4) {
        std::fprintf(stderr, "board_sim: DIVISOR must be >= 4, not %s\n", argv[1]);
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        std::perror("board_sim: pseudo-terminal");
        return 1;
    }
    const char* name = ptsname(master);
    // Keep one handle on the terminal so that the master never sees a hang-up between hosts,
    // and make it raw: no echo, no line editing, no character translation.
    int slave = open(name, O_RDWR | O_NOCTTY);
    struct termios tio;
    if (slave < 0 || tcgetattr(slave, &tio) != 0) {
        std::perror("board_sim: terminal");
        return 1;
    }
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    std::printf("PTY %s\n", name);
    std::fflush(stdout);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<VTOP>(ctx.get());
    top->clk = 0;
    top->rst = 1;
    top->rx = 1;
    top->eval();

    std::deque<unsigned char> to_board, to_host;
    unsigned rx_frame = 0;   // bits still to send on rx, LSB first (0: line idle)
    int rx_bits = 0;
    long rx_timer = 0;
    int tx_state = -1;       // -1: idle; 0: start bit; 1..8: data bits; 9: stop bit
    long tx_timer = 0;
    unsigned tx_byte = 0;
    long idle = 0;
    unsigned char buf[4096];

    for (long cycle = 0; !g_stop; ++cycle) {
        if (cycle == 8) top->rst = 0;
        if (cycle % POLL_EVERY == 0) {
            if (idle > IDLE_CYCLES && to_board.empty() && rx_bits == 0 && tx_state < 0
                && to_host.empty()) {
                struct pollfd p = {master, POLLIN, 0};
                poll(&p, 1, 20);
            }
            ssize_t n = read(master, buf, sizeof buf);
            for (ssize_t i = 0; i < n; ++i) to_board.push_back(buf[i]);
            if (n > 0) idle = 0;
            while (!to_host.empty()) {
                unsigned char out[256];
                size_t len = 0;
                for (; len < sizeof out && len < to_host.size(); ++len) out[len] = to_host[len];
                ssize_t w = write(master, out, len);
                if (w <= 0) break;
                to_host.erase(to_host.begin(), to_host.begin() + w);
            }
        }
        // rx: the host's bytes as 8N1 frames
        if (rx_bits == 0 && !to_board.empty() && cycle >= 8) {
            rx_frame = (1u << 9) | (unsigned(to_board.front()) << 1);
            to_board.pop_front();
            rx_bits = 10;
            rx_timer = div;
        }
        top->rx = rx_bits ? (rx_frame & 1) : 1;
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        if (rx_bits && --rx_timer == 0) {
            rx_frame >>= 1;
            --rx_bits;
            rx_timer = div;
        }
        // tx: decode the board's frames, sampling in the middle of each bit
        const int tx = top->tx;
        if (tx_state < 0) {
            if (!tx) {
                tx_state = 0;
                tx_timer = div / 2;
            }
        } else if (--tx_timer == 0) {
            if (tx_state == 0) {
                if (tx) tx_state = -1;        // a glitch, not a start bit
                else {
                    tx_state = 1;
                    tx_byte = 0;
                    tx_timer = div;
                }
            } else if (tx_state <= 8) {
                tx_byte |= unsigned(tx) << (tx_state - 1);
                ++tx_state;
                tx_timer = div;
            } else {
                if (tx) to_host.push_back(static_cast<unsigned char>(tx_byte));
                tx_state = -1;
            }
        }
        if (rx_bits || tx_state >= 0) idle = 0;
        else ++idle;
    }
    top->final();
    close(slave);
    close(master);
    return 0;
}
