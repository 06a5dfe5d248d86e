/* densehw_driver.c: C driver of the generated PE array (see densehw_driver.h). C99, no
 * allocation, no OS; every constant comes from the generated densehw_params.h. */
#include "densehw_driver.h"

#define DONE_OR_ERROR (DENSEHW_STATUS_DONE_MASK | DENSEHW_STATUS_ERROR_MASK)

uint32_t densehw_read(const densehw_dev *dev, uint32_t offset)
{
    return dev->regs[offset / 4u];
}

void densehw_write(const densehw_dev *dev, uint32_t offset, uint32_t value)
{
    dev->regs[offset / 4u] = value;
}

int densehw_init(densehw_dev *dev, uintptr_t base)
{
    static const uint32_t ident[][2] = {
        {DENSEHW_REG_VERSION, DENSEHW_REG_VERSION_VALUE},
        {DENSEHW_REG_GEOMETRY, DENSEHW_REG_GEOMETRY_VALUE},
        {DENSEHW_REG_DEPTH, DENSEHW_REG_DEPTH_VALUE},
        {DENSEHW_REG_FORMATS, DENSEHW_REG_FORMATS_VALUE},
        {DENSEHW_REG_E0_RANGE, DENSEHW_REG_E0_RANGE_VALUE},
    };
    size_t i;

    dev->regs = (volatile uint32_t *)base;
    dev->wait_mode = DENSEHW_WAIT_POLL;
    dev->timeout = 0;
    dev->idle = NULL;
    dev->idle_arg = NULL;
    dev->irq_status = 0;
    dev->irq_count = 0;
    dev->status = 0;
    dev->error = 0;
    if (densehw_read(dev, DENSEHW_REG_ID) != DENSEHW_ID_MAGIC)
        return DENSEHW_E_ID;
    for (i = 0; i < sizeof ident / sizeof ident[0]; i++)
        if (densehw_read(dev, ident[i][0]) != ident[i][1])
            return DENSEHW_E_CONFIG;
    densehw_write(dev, DENSEHW_REG_IRQ_EN, 0);
    return DENSEHW_OK;
}

int densehw_check_layer(const densehw_layer *layer)
{
    if (layer->n < 1u || layer->n > DENSEHW_MAX_NM || layer->m < 1u || layer->m > DENSEHW_MAX_NM
        || layer->k < 1u || layer->k > DENSEHW_DEPTH)
        return DENSEHW_E_SHAPE;
    if (!(layer->options & DENSEHW_CTRL_E0_PER_CHANNEL_MASK)
        && (layer->e0 < DENSEHW_E0_MIN || layer->e0 > DENSEHW_E0_MAX))
        return DENSEHW_E_SHAPE;
    if (layer->options & DENSEHW_CTRL_START_MASK)
        return DENSEHW_E_SHAPE;
    return DENSEHW_OK;
}

void densehw_configure(const densehw_dev *dev, const densehw_layer *layer)
{
    densehw_write(dev, DENSEHW_REG_N, layer->n);
    densehw_write(dev, DENSEHW_REG_K, layer->k);
    densehw_write(dev, DENSEHW_REG_M, layer->m);
    densehw_write(dev, DENSEHW_REG_E0, (uint32_t)layer->e0);
}

void densehw_irq_arm(densehw_dev *dev)
{
    dev->irq_status = 0;
    densehw_write(dev, DENSEHW_REG_IRQ_EN, DENSEHW_IRQ_EN_DONE_MASK | DENSEHW_IRQ_EN_ERROR_MASK);
}

void densehw_irq_handler(densehw_dev *dev)
{
    uint32_t status = densehw_read(dev, DENSEHW_REG_STATUS);

    densehw_write(dev, DENSEHW_REG_IRQ_EN, 0);      /* lowers irq; the condition stays */
    dev->irq_count = dev->irq_count + 1u;
    dev->irq_status = status | DENSEHW_STATUS_IRQ_MASK;   /* nonzero: seen */
}

int densehw_irq_seen(const densehw_dev *dev)
{
    return dev->irq_status != 0;
}

void densehw_start(densehw_dev *dev, const densehw_layer *layer)
{
    uint32_t options = layer->options & (DENSEHW_CTRL_RELU_MASK | DENSEHW_CTRL_BIAS_EN_MASK
                                         | DENSEHW_CTRL_E0_PER_CHANNEL_MASK);

    if (dev->wait_mode == DENSEHW_WAIT_IRQ)
        densehw_irq_arm(dev);
    densehw_write(dev, DENSEHW_REG_CTRL, DENSEHW_CTRL_START_MASK | options);
}

int densehw_wait(densehw_dev *dev)
{
    uint32_t polls = 0, status;

    if (dev->wait_mode == DENSEHW_WAIT_IRQ) {
        while (!densehw_irq_seen(dev)) {
            if (dev->timeout && ++polls > dev->timeout) {
                densehw_write(dev, DENSEHW_REG_IRQ_EN, 0);
                return DENSEHW_E_TIMEOUT;
            }
            if (dev->idle)
                dev->idle(dev->idle_arg);
        }
    }
    /* polling (also after the interrupt: DONE and ERROR may come a clock apart) */
    for (;;) {
        status = densehw_read(dev, DENSEHW_REG_STATUS);
        if (status & DONE_OR_ERROR)
            break;
        if (dev->timeout && ++polls > dev->timeout)
            return DENSEHW_E_TIMEOUT;
    }
    dev->status = status;
    dev->error = densehw_read(dev, DENSEHW_REG_ERROR);
    if (dev->error) {
        densehw_write(dev, DENSEHW_REG_ERROR, dev->error);
        return DENSEHW_E_HW;
    }
    return DENSEHW_OK;
}

void densehw_read_counters(const densehw_dev *dev, densehw_counters *out)
{
    out->cycles_busy = densehw_read(dev, DENSEHW_REG_CYCLES_BUSY);
    out->cycles_active = densehw_read(dev, DENSEHW_REG_CYCLES_ACTIVE);
    out->stall_act = densehw_read(dev, DENSEHW_REG_STALL_ACT);
    out->stall_wgt = densehw_read(dev, DENSEHW_REG_STALL_WGT);
    out->stall_res = densehw_read(dev, DENSEHW_REG_STALL_RES);
    out->stall_drain = densehw_read(dev, DENSEHW_REG_STALL_DRAIN);
}

int densehw_run_layer(densehw_dev *dev, const densehw_layer *layer, const densehw_dma_ops *dma,
                      const densehw_buffers *bufs, densehw_counters *counters)
{
    const uint32_t n = layer->n, k = layer->k, m = layer->m;
    int rc;

    rc = densehw_check_layer(layer);
    if (rc)
        return rc;
    densehw_configure(dev, layer);
    if (dma->start(dma->ctx, DENSEHW_STREAM_RES, bufs->res, DENSEHW_RES_WORDS(n, m), 0) < 0)
        return DENSEHW_E_DMA;
    densehw_start(dev, layer);
    if (dma->start(dma->ctx, DENSEHW_STREAM_WGT, bufs->wgt, DENSEHW_WGT_WORDS(k, m),
                   DENSEHW_CHANNEL_WORDS(k)) < 0
        || dma->start(dma->ctx, DENSEHW_STREAM_ACT, bufs->act, DENSEHW_ACT_WORDS(n, k, m),
                      (size_t)k * DENSEHW_ACT_BEAT_WORDS) < 0)
        return DENSEHW_E_DMA;
    rc = densehw_wait(dev);
    if (rc)
        return rc;
    if (dma->wait(dma->ctx, DENSEHW_STREAM_WGT) < 0 || dma->wait(dma->ctx, DENSEHW_STREAM_ACT) < 0
        || dma->wait(dma->ctx, DENSEHW_STREAM_RES) < 0)
        return DENSEHW_E_DMA;
    if (counters)
        densehw_read_counters(dev, counters);
    return DENSEHW_OK;
}

/* -- stream images ---------------------------------------------------------------------- */

void densehw_pack_weights(uint32_t *dst, const uint8_t *codes, size_t ldc, uint32_t k,
                          uint32_t m, const int32_t *e0, int32_t e0_all,
                          const densehw_out_t *bias)
{
    const uint32_t code_mask = (1u << DENSEHW_WBITS) - 1u;
    uint32_t c, i;

    /* M tiles in order, their channels in order: channel order */
    for (c = 0; c < m; c++) {
        const uint8_t *row = codes + (size_t)c * ldc;
        uint32_t *code_words;

        *dst++ = bias ? (uint32_t)bias[c] : 0u;
        *dst++ = (uint32_t)(e0 ? e0[c] : e0_all);
        code_words = dst;
        for (i = 0; i < DENSEHW_CODE_WORDS(k); i++)
            code_words[i] = 0;
        for (i = 0; i < k; i++) {               /* code i at bits [i*B, (i+1)*B), LSB first */
            uint32_t bit = i * DENSEHW_WBITS, word = bit / DENSEHW_WORD_BITS;
            uint32_t shift = bit % DENSEHW_WORD_BITS, code = row[i] & code_mask;

            code_words[word] |= code << shift;
            if (shift + DENSEHW_WBITS > DENSEHW_WORD_BITS)
                code_words[word + 1] |= code >> (DENSEHW_WORD_BITS - shift);
        }
        dst += DENSEHW_CODE_WORDS(k);
    }
}

void densehw_pack_activations(uint32_t *dst, const densehw_in_t *x, size_t ldx, uint32_t n,
                              uint32_t k, uint32_t m)
{
    const uint32_t m_tiles = DENSEHW_M_TILES(m);
    uint32_t t, n0, kk, r, w;

    for (t = 0; t < m_tiles; t++) {
        for (n0 = 0; n0 < n; n0 += DENSEHW_ROWS) {
            for (kk = 0; kk < k; kk++) {
                for (w = 0; w < DENSEHW_ACT_BEAT_WORDS; w++)
                    dst[w] = 0;
                for (r = 0; r < DENSEHW_ROWS && n0 + r < n; r++) {
                    uint32_t v = (uint32_t)x[(size_t)(n0 + r) * ldx + kk];
                    uint32_t bit = r * DENSEHW_IN_WIDTH, word = bit / 32u, shift = bit % 32u;

                    dst[word] |= v << shift;
                    if (shift + DENSEHW_IN_WIDTH > 32u)
                        dst[word + 1] |= v >> (32u - shift);
                }
                dst += DENSEHW_ACT_BEAT_WORDS;
            }
        }
    }
}

void densehw_unpack_results(densehw_out_t *y, size_t ldy, const uint32_t *res, uint32_t n,
                            uint32_t m)
{
    const uint32_t out_mask = DENSEHW_OUT_WIDTH >= 32u ? 0xFFFFFFFFu
                                                       : (1u << (DENSEHW_OUT_WIDTH % 32u)) - 1u;
    uint32_t m0, n0, r, c;

    for (m0 = 0; m0 < m; m0 += DENSEHW_COLS) {
        for (n0 = 0; n0 < n; n0 += DENSEHW_ROWS) {
            for (r = 0; r < DENSEHW_ROWS && n0 + r < n; r++) {
                for (c = 0; c < DENSEHW_COLS && m0 + c < m; c++) {
                    y[(size_t)(n0 + r) * ldy + m0 + c] = (densehw_out_t)(*res & out_mask);
                    res += DENSEHW_RES_BEAT_WORDS;
                }
            }
        }
    }
}
