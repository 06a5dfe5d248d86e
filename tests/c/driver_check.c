/* Host check of the C driver (densehw_driver.c) against a fake register file; driven by
 * tests/test_driver.py, which compares its output with contract.array.
 *
 * stdin: "n k m per_channel e0_all has_bias", then n*k activations, m*k codes, m e0s, m
 * biases, n*m result words (all integers). stdout: "wgt" words, "act" words, "y" values
 * (hex, one line each), then the checks of the register-level calls ("ok <name>" lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "densehw_driver.h"

#define NREGS 64
static uint32_t fake[NREGS];

static unsigned long rd_ul(void)
{
    unsigned long v;
    if (scanf("%lu", &v) != 1) {
        fprintf(stderr, "bad input\n");
        exit(2);
    }
    return v;
}

static void print_words(const char *tag, const uint32_t *w, size_t count)
{
    size_t i;
    printf("%s", tag);
    for (i = 0; i < count; i++)
        printf(" %08lx", (unsigned long)w[i]);
    printf("\n");
}

static void check(int cond, const char *name)
{
    printf("%s %s\n", cond ? "ok" : "FAIL", name);
}

/* fake DMA: remembers what it was asked; finishing the activation stream makes the "array"
   write the results and set STATUS.DONE */
struct fake_dma {
    uint32_t *res;
    size_t words[3], frames[3];
    int order[3], starts;
    const uint32_t *results;
    size_t res_words;
};

static int dma_start(void *ctx, int stream, uint32_t *buf, size_t words, size_t frame_words)
{
    struct fake_dma *d = ctx;
    d->words[stream] = words;
    d->frames[stream] = frame_words;
    d->order[d->starts++] = stream;
    if (stream == DENSEHW_STREAM_RES)
        d->res = buf;
    if (stream == DENSEHW_STREAM_ACT) {
        memcpy(d->res, d->results, d->res_words * sizeof(uint32_t));
        fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_DONE_MASK;
        fake[DENSEHW_REG_CYCLES_BUSY / 4] = 1234u;
        fake[DENSEHW_REG_STALL_DRAIN / 4] = 56u;
    }
    return 0;
}

static int dma_wait(void *ctx, int stream)
{
    (void)ctx;
    (void)stream;
    return 0;
}

static densehw_dev *irq_dev;
static unsigned idle_calls;

static void idle_then_interrupt(void *arg)
{
    (void)arg;
    if (++idle_calls == 3) {                         /* the "interrupt" arrives */
        fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_DONE_MASK | DENSEHW_STATUS_IRQ_MASK;
        densehw_irq_handler(irq_dev);
    }
}

int main(void)
{
    uint32_t n, k, m, i, per_channel, has_bias;
    int32_t e0_all;
    densehw_in_t *x;
    uint8_t *codes;
    int32_t *e0;
    densehw_out_t *bias, *y;
    uint32_t *wgt, *act, *res, *res_run;
    densehw_dev dev;
    densehw_layer layer;
    densehw_counters cnt;
    struct fake_dma dma_state;
    densehw_dma_ops dma;
    densehw_buffers bufs;
    int rc;

    n = (uint32_t)rd_ul(); k = (uint32_t)rd_ul(); m = (uint32_t)rd_ul();
    per_channel = (uint32_t)rd_ul();
    e0_all = (int32_t)(long)rd_ul() - 1000;
    has_bias = (uint32_t)rd_ul();
    x = calloc((size_t)n * k, sizeof *x);
    codes = calloc((size_t)m * k, 1);
    e0 = calloc(m, sizeof *e0);
    bias = calloc(m, sizeof *bias);
    y = calloc((size_t)n * m, sizeof *y);
    wgt = calloc(DENSEHW_WGT_WORDS(k, m), sizeof *wgt);
    act = calloc(DENSEHW_ACT_WORDS(n, k, m), sizeof *act);
    res = calloc(DENSEHW_RES_WORDS(n, m), sizeof *res);
    res_run = calloc(DENSEHW_RES_WORDS(n, m), sizeof *res_run);
    for (i = 0; i < n * k; i++) x[i] = (densehw_in_t)rd_ul();
    for (i = 0; i < m * k; i++) codes[i] = (uint8_t)rd_ul();
    for (i = 0; i < m; i++) e0[i] = (int32_t)((long)rd_ul() - 1000);
    for (i = 0; i < m; i++) bias[i] = (densehw_out_t)rd_ul();
    for (i = 0; i < DENSEHW_RES_WORDS(n, m); i++) res[i] = (uint32_t)rd_ul();

    densehw_pack_weights(wgt, codes, k, k, m, per_channel ? e0 : NULL, e0_all,
                         has_bias ? bias : NULL);
    print_words("wgt", wgt, DENSEHW_WGT_WORDS(k, m));
    densehw_pack_activations(act, x, k, n, k, m);
    print_words("act", act, DENSEHW_ACT_WORDS(n, k, m));
    densehw_unpack_results(y, m, res, n, m);
    printf("y");
    for (i = 0; i < n * m; i++)
        printf(" %lx", (unsigned long)y[i]);
    printf("\n");

    /* init: the identification registers of this configuration */
    fake[DENSEHW_REG_ID / 4] = DENSEHW_ID_MAGIC;
    fake[DENSEHW_REG_VERSION / 4] = DENSEHW_REG_VERSION_VALUE;
    fake[DENSEHW_REG_GEOMETRY / 4] = DENSEHW_REG_GEOMETRY_VALUE;
    fake[DENSEHW_REG_DEPTH / 4] = DENSEHW_REG_DEPTH_VALUE;
    fake[DENSEHW_REG_FORMATS / 4] = DENSEHW_REG_FORMATS_VALUE;
    fake[DENSEHW_REG_E0_RANGE / 4] = DENSEHW_REG_E0_RANGE_VALUE;
    fake[DENSEHW_REG_IRQ_EN / 4] = 0xFFu;
    check(densehw_init(&dev, (uintptr_t)fake) == DENSEHW_OK, "init");
    check(fake[DENSEHW_REG_IRQ_EN / 4] == 0, "init_masks_irq");
    fake[DENSEHW_REG_DEPTH / 4] ^= 1u;
    check(densehw_init(&dev, (uintptr_t)fake) == DENSEHW_E_CONFIG, "init_config");
    fake[DENSEHW_REG_DEPTH / 4] ^= 1u;
    fake[DENSEHW_REG_ID / 4] = 0;
    check(densehw_init(&dev, (uintptr_t)fake) == DENSEHW_E_ID, "init_id");
    fake[DENSEHW_REG_ID / 4] = DENSEHW_ID_MAGIC;
    densehw_init(&dev, (uintptr_t)fake);

    /* software shape check: the limits of the header */
    layer.n = n; layer.k = k; layer.m = m; layer.e0 = e0_all;
    layer.options = DENSEHW_CTRL_RELU_MASK | (has_bias ? DENSEHW_CTRL_BIAS_EN_MASK : 0u)
                    | (per_channel ? DENSEHW_CTRL_E0_PER_CHANNEL_MASK : 0u);
    check(densehw_check_layer(&layer) == DENSEHW_OK, "check_ok");
    {
        densehw_layer bad = layer;
        bad.k = DENSEHW_DEPTH + 1u;
        check(densehw_check_layer(&bad) == DENSEHW_E_SHAPE, "check_k");
        bad = layer; bad.k = 0;
        check(densehw_check_layer(&bad) == DENSEHW_E_SHAPE, "check_k0");
        bad = layer; bad.n = DENSEHW_MAX_NM + 1u;
        check(densehw_check_layer(&bad) == DENSEHW_E_SHAPE, "check_n");
        bad = layer; bad.options = 0; bad.e0 = DENSEHW_E0_MAX + 1;
        check(densehw_check_layer(&bad) == DENSEHW_E_SHAPE, "check_e0");
    }

    /* configure + start write the shape registers and CTRL */
    densehw_configure(&dev, &layer);
    densehw_start(&dev, &layer);
    check(fake[DENSEHW_REG_N / 4] == n && fake[DENSEHW_REG_K / 4] == k
          && fake[DENSEHW_REG_M / 4] == m && fake[DENSEHW_REG_E0 / 4] == (uint32_t)e0_all,
          "configure");
    check(fake[DENSEHW_REG_CTRL / 4] == (DENSEHW_CTRL_START_MASK | layer.options), "start");

    /* polling: timeout, error (bits returned and cleared by a write of 1s), done */
    dev.timeout = 5;
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_BUSY_MASK;
    check(densehw_wait(&dev) == DENSEHW_E_TIMEOUT, "poll_timeout");
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_ERROR_MASK;
    fake[DENSEHW_REG_ERROR / 4] = DENSEHW_ERROR_K_RANGE_MASK;
    rc = densehw_wait(&dev);
    check(rc == DENSEHW_E_HW && dev.error == DENSEHW_ERROR_K_RANGE_MASK, "poll_error");
    fake[DENSEHW_REG_ERROR / 4] = 0;
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_DONE_MASK;
    check(densehw_wait(&dev) == DENSEHW_OK, "poll_done");

    /* interrupt: start arms IRQ_EN; the wait idles until the handler has run */
    irq_dev = &dev;
    dev.wait_mode = DENSEHW_WAIT_IRQ;
    dev.idle = idle_then_interrupt;
    dev.timeout = 100;
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_BUSY_MASK;
    densehw_start(&dev, &layer);
    check(fake[DENSEHW_REG_IRQ_EN / 4]
          == (DENSEHW_IRQ_EN_DONE_MASK | DENSEHW_IRQ_EN_ERROR_MASK), "irq_armed");
    rc = densehw_wait(&dev);
    check(rc == DENSEHW_OK && idle_calls == 3 && dev.irq_count == 1
          && fake[DENSEHW_REG_IRQ_EN / 4] == 0, "irq_wait");
    dev.idle = NULL;
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_BUSY_MASK;
    densehw_start(&dev, &layer);
    check(densehw_wait(&dev) == DENSEHW_E_TIMEOUT && fake[DENSEHW_REG_IRQ_EN / 4] == 0,
          "irq_timeout");

    /* a whole layer through the DMA hooks */
    dev.wait_mode = DENSEHW_WAIT_POLL;
    memset(&dma_state, 0, sizeof dma_state);
    dma_state.results = res;
    dma_state.res_words = DENSEHW_RES_WORDS(n, m);
    dma.ctx = &dma_state;
    dma.start = dma_start;
    dma.wait = dma_wait;
    bufs.wgt = wgt; bufs.act = act; bufs.res = res_run;
    fake[DENSEHW_REG_STATUS / 4] = DENSEHW_STATUS_BUSY_MASK;
    rc = densehw_run_layer(&dev, &layer, &dma, &bufs, &cnt);
    check(rc == DENSEHW_OK && cnt.cycles_busy == 1234u && cnt.stall_drain == 56u, "run_layer");
    check(dma_state.order[0] == DENSEHW_STREAM_RES && dma_state.starts == 3, "run_order");
    check(memcmp(res_run, res, DENSEHW_RES_WORDS(n, m) * sizeof(uint32_t)) == 0, "run_results");
    printf("dma %lu %lu %lu %lu %lu\n", (unsigned long)dma_state.words[DENSEHW_STREAM_WGT],
           (unsigned long)dma_state.frames[DENSEHW_STREAM_WGT],
           (unsigned long)dma_state.words[DENSEHW_STREAM_ACT],
           (unsigned long)dma_state.frames[DENSEHW_STREAM_ACT],
           (unsigned long)dma_state.words[DENSEHW_STREAM_RES]);
    {
        densehw_layer bad = layer;
        bad.k = 0;
        check(densehw_run_layer(&dev, &bad, &dma, &bufs, NULL) == DENSEHW_E_SHAPE, "run_shape");
    }
    return 0;
}
