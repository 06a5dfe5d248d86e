/* densehw_driver.h: C driver of the generated PE array `densehw_array` (bare metal, C99).
 *
 * Shipped by `densehw generate` beside densehw_params.h, which it includes: every register
 * offset, bit position, width and framing rule comes from that generated header, so the same
 * two files drive any ArrayConfig. Nothing here allocates memory or depends on an OS.
 *
 * A layer Y[N][M] = round(X[N][K] . W[M][K]^T + bias) runs as:
 *   densehw_init(&dev, base)                        check ID, version and configuration
 *   densehw_pack_weights / densehw_pack_activations  stream images in memory (DMA framing)
 *   densehw_run_layer(&dev, &layer, &dma, &bufs, &counters)
 *       = densehw_configure + densehw_start + DMA starts + densehw_wait + counters
 *   densehw_unpack_results                          result stream -> Y (row-major)
 * or step by step with the register-level calls. The DMA engine is the platform's: it is
 * reached through densehw_dma_ops (start a transfer, wait for its end).
 *
 * Memory framing of the streams (what a DMA moves, 32-bit little-endian words):
 *   weights      DENSEHW_WGT_WORDS(k, m) words, channel by channel (M order): bias word, e0
 *                word, DENSEHW_CODE_WORDS(k) packed code words; tlast on each channel's
 *                last word (a frame of DENSEHW_CHANNEL_WORDS(k) words);
 *   activations  DENSEHW_ACT_BEATS(n, k, m) beats of DENSEHW_ACT_BEAT_WORDS words each, lane r
 *                at bit r * DENSEHW_IN_WIDTH of the beat (s_axis_act tdata = the low
 *                DENSEHW_ACT_TDATA_WIDTH bits); tlast on every k-th beat (a frame of
 *                k * DENSEHW_ACT_BEAT_WORDS words);
 *   results      DENSEHW_RES_BEATS(n, m) beats of DENSEHW_RES_BEAT_WORDS word each (the
 *                m_axis_res tdata zero-extended), in tile order. */
#ifndef DENSEHW_DRIVER_H
#define DENSEHW_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "densehw_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 32-bit words of one stream beat in memory */
#define DENSEHW_ACT_BEAT_WORDS ((DENSEHW_ACT_TDATA_WIDTH + 31u) / 32u)
#define DENSEHW_RES_BEAT_WORDS ((DENSEHW_RES_TDATA_WIDTH + 31u) / 32u)
/* memory words of a layer's streams */
#define DENSEHW_ACT_WORDS(n, k, m) (DENSEHW_ACT_BEATS(n, k, m) * DENSEHW_ACT_BEAT_WORDS)
#define DENSEHW_RES_WORDS(n, m) (DENSEHW_RES_BEATS(n, m) * DENSEHW_RES_BEAT_WORDS)

/* raw bit patterns of one activation (in_fmt) and one result or bias (out_fmt) */
#if DENSEHW_IN_WIDTH <= 8
typedef uint8_t densehw_in_t;
#elif DENSEHW_IN_WIDTH <= 16
typedef uint16_t densehw_in_t;
#else
typedef uint32_t densehw_in_t;
#endif
#if DENSEHW_OUT_WIDTH <= 8
typedef uint8_t densehw_out_t;
#elif DENSEHW_OUT_WIDTH <= 16
typedef uint16_t densehw_out_t;
#else
typedef uint32_t densehw_out_t;
#endif

/* return codes (negative: failure) */
#define DENSEHW_OK 0
#define DENSEHW_E_ID (-1)       /* register ID is not DENSEHW_ID_MAGIC: no array at that base */
#define DENSEHW_E_CONFIG (-2)   /* VERSION, GEOMETRY, DEPTH, FORMATS or E0_RANGE differ from
                                   the header's: the header belongs to another configuration */
#define DENSEHW_E_SHAPE (-3)    /* layer outside the array's limits (checked in software) */
#define DENSEHW_E_HW (-4)       /* the array reported ERROR bits (densehw_dev.error) */
#define DENSEHW_E_TIMEOUT (-5)  /* no DONE or ERROR within densehw_dev.timeout polls */
#define DENSEHW_E_DMA (-6)      /* a densehw_dma_ops call failed or timed out */

/* streams, for densehw_dma_ops */
#define DENSEHW_STREAM_WGT 0    /* memory -> s_axis_wgt */
#define DENSEHW_STREAM_ACT 1    /* memory -> s_axis_act */
#define DENSEHW_STREAM_RES 2    /* m_axis_res -> memory */

/* how densehw_wait and densehw_run_layer wait for DONE or ERROR */
#define DENSEHW_WAIT_POLL 0     /* read STATUS until DONE or ERROR */
#define DENSEHW_WAIT_IRQ 1      /* irq: the platform's handler calls densehw_irq_handler */

typedef struct densehw_dev {
    volatile uint32_t *regs;    /* base of the AXI4-Lite register block */
    int wait_mode;              /* DENSEHW_WAIT_POLL (default) or DENSEHW_WAIT_IRQ */
    uint32_t timeout;           /* polls (or idle calls) before DENSEHW_E_TIMEOUT; 0: none */
    /* called between polls of the irq flag (e.g. a WFI); NULL: spin. It must not sleep
       through an interrupt that arrives between the flag's check and the sleep (on RISC-V:
       disable interrupts, check densehw_irq_seen, wfi, enable) */
    void (*idle)(void *arg);
    void *idle_arg;
    volatile uint32_t irq_status;  /* STATUS read by densehw_irq_handler (0: not yet) */
    volatile uint32_t irq_count;   /* interrupts taken */
    uint32_t status;            /* STATUS at the end of the last wait */
    uint32_t error;             /* ERROR bits seen by the last wait (then cleared) */
} densehw_dev;

typedef struct densehw_layer {
    uint32_t n, k, m;           /* Y[n][m] = X[n][k] . W[m][k]^T */
    int32_t e0;                 /* per-tensor weight offset (unless E0_PER_CHANNEL) */
    uint32_t options;           /* DENSEHW_CTRL_RELU_MASK | _BIAS_EN_MASK | _E0_PER_CHANNEL_MASK */
} densehw_layer;

typedef struct densehw_counters {
    uint32_t cycles_busy, cycles_active, stall_act, stall_wgt, stall_res, stall_drain;
} densehw_counters;

typedef struct densehw_dma_ops {
    void *ctx;
    /* start moving `words` words between buf and `stream`; for the memory-to-stream
       directions tlast goes on the last word of every frame of `frame_words` words (the
       result stream's frame_words is 0: its tlast is the array's). Returns 0 or < 0. */
    int (*start)(void *ctx, int stream, uint32_t *buf, size_t words, size_t frame_words);
    /* wait until the transfer of `stream` has finished (the data is in memory, caches
       handled); 0 or < 0 */
    int (*wait)(void *ctx, int stream);
} densehw_dma_ops;

typedef struct densehw_buffers {
    uint32_t *wgt;              /* DENSEHW_WGT_WORDS(k, m) words (densehw_pack_weights) */
    uint32_t *act;              /* DENSEHW_ACT_WORDS(n, k, m) words (densehw_pack_activations) */
    uint32_t *res;              /* DENSEHW_RES_WORDS(n, m) words, written by the DMA */
} densehw_buffers;

/* -- registers ------------------------------------------------------------------------- */
uint32_t densehw_read(const densehw_dev *dev, uint32_t offset);
void densehw_write(const densehw_dev *dev, uint32_t offset, uint32_t value);
/* dev at `base`; checks ID and that the array is the configuration of densehw_params.h.
   Polling, no timeout. */
int densehw_init(densehw_dev *dev, uintptr_t base);

/* -- one layer, step by step ----------------------------------------------------------- */
int densehw_check_layer(const densehw_layer *layer);        /* DENSEHW_OK or DENSEHW_E_SHAPE */
void densehw_configure(const densehw_dev *dev, const densehw_layer *layer);  /* N K M E0 */
/* arms the interrupt in DENSEHW_WAIT_IRQ mode, then writes CTRL = START | options. The array
   itself checks the shape: a bad one sets ERROR bits and does not start. */
void densehw_start(densehw_dev *dev, const densehw_layer *layer);
/* waits for DONE or ERROR (dev->wait_mode); DENSEHW_OK, DENSEHW_E_HW (dev->error holds the
   bits, which are cleared in the array) or DENSEHW_E_TIMEOUT */
int densehw_wait(densehw_dev *dev);
void densehw_read_counters(const densehw_dev *dev, densehw_counters *out);

/* -- interrupt ------------------------------------------------------------------------- */
void densehw_irq_arm(densehw_dev *dev);       /* clear the flag, enable DONE and ERROR */
void densehw_irq_handler(densehw_dev *dev);   /* from the platform's ISR: mask, record */
int densehw_irq_seen(const densehw_dev *dev);

/* -- a whole layer through DMA --------------------------------------------------------- */
/* check, configure, start the result DMA, start, feed the weight and activation DMAs, wait
   for DONE (or ERROR) and the result DMA, read the counters (if `counters`). */
int densehw_run_layer(densehw_dev *dev, const densehw_layer *layer, const densehw_dma_ops *dma,
                      const densehw_buffers *bufs, densehw_counters *counters);

/* -- stream images in memory (DMA framing) --------------------------------------------- */
/* codes[m * ldc + k]: B-bit codes; e0: per-channel offsets (NULL: e0_all for every channel);
   bias: raw out_fmt bits per channel (NULL: 0). Writes DENSEHW_WGT_WORDS(k, m) words. */
void densehw_pack_weights(uint32_t *dst, const uint8_t *codes, size_t ldc, uint32_t k,
                          uint32_t m, const int32_t *e0, int32_t e0_all,
                          const densehw_out_t *bias);
/* x[n * ldx + k]: raw in_fmt bits. Writes DENSEHW_ACT_WORDS(n, k, m) words (X is streamed
   once per M tile; lanes past N are 0). */
void densehw_pack_activations(uint32_t *dst, const densehw_in_t *x, size_t ldx, uint32_t n,
                              uint32_t k, uint32_t m);
/* res: DENSEHW_RES_WORDS(n, m) words in stream order -> y[n * ldy + m] */
void densehw_unpack_results(densehw_out_t *y, size_t ldy, const uint32_t *res, uint32_t n,
                            uint32_t m);

#ifdef __cplusplus
}
#endif

#endif /* DENSEHW_DRIVER_H */
