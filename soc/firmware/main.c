/* main.c: firmware of the densehw LiteX SoC (make soc-sim). With the C driver (densehw_driver.h)
 * it runs on the array, by DMA from main RAM:
 *   1. the GEMM layers and error cases of soc_items (interrupt or polling per item);
 *   2. the compiled program on soc_images images, host steps in C (dhw_program.c);
 * compares every output word with the golden model's (linked in, soc_data.c) and prints one
 * "@" line per layer, step and image for soc/sim.py, then ends the simulation. */
#include <stdio.h>
#include <string.h>

#include <generated/csr.h>
#include <generated/mem.h>
#include <generated/soc.h>
#include <irq.h>
#include <libbase/uart.h>
#include <system.h>

#include "densehw_driver.h"
#include "dhw_float.h"
#include "dhw_program.h"
#include "soc_data.h"

#define DMA_TIMEOUT 50000000u           /* polls of a DMA's done flag */
#define ARRAY_TIMEOUT 50000000u         /* polls of STATUS (or of the interrupt flag) */

static densehw_dev dev;

/* -- CPU cycles: timer0 counting down from 2**32 - 1 at the system clock -- */
static void timer_start(void)
{
    timer0_en_write(0);
    timer0_reload_write(0xFFFFFFFFu);
    timer0_load_write(0xFFFFFFFFu);
    timer0_en_write(1);
}

static uint32_t timer_now(void)
{
    timer0_update_value_write(1);
    return timer0_value_read();
}

/* -- the DMA engines of soc/litex_array.py -- */
static int dma_start(void *ctx, int stream, uint32_t *buf, size_t words, size_t frame_words)
{
    uint64_t base = (uint64_t)(uintptr_t)buf;
    (void)ctx;
    switch (stream) {
    case DENSEHW_STREAM_WGT:
        densehw_wgt_dma_enable_write(0);
        densehw_wgt_framer_frame_write((uint32_t)frame_words);
        densehw_wgt_dma_base_write(base);
        densehw_wgt_dma_length_write((uint32_t)(words * 4u));
        densehw_wgt_dma_enable_write(1);
        return 0;
    case DENSEHW_STREAM_ACT:
        densehw_act_dma_enable_write(0);
        densehw_act_framer_frame_write((uint32_t)frame_words);
        densehw_act_dma_base_write(base);
        densehw_act_dma_length_write((uint32_t)(words * 4u));
        densehw_act_dma_enable_write(1);
        return 0;
    case DENSEHW_STREAM_RES:
        densehw_res_dma_enable_write(0);
        densehw_res_dma_base_write(base);
        densehw_res_dma_length_write((uint32_t)(words * 4u));
        densehw_res_dma_enable_write(1);
        return 0;
    default:
        return -1;
    }
}

static int dma_wait(void *ctx, int stream)
{
    uint32_t polls = 0;
    (void)ctx;
    switch (stream) {
    case DENSEHW_STREAM_WGT:
        while (!densehw_wgt_dma_done_read())
            if (++polls > DMA_TIMEOUT)
                return -1;
        densehw_wgt_dma_enable_write(0);
        return 0;
    case DENSEHW_STREAM_ACT:
        while (!densehw_act_dma_done_read())
            if (++polls > DMA_TIMEOUT)
                return -1;
        densehw_act_dma_enable_write(0);
        return 0;
    case DENSEHW_STREAM_RES:
        while (!densehw_res_dma_done_read())
            if (++polls > DMA_TIMEOUT)
                return -1;
        densehw_res_dma_enable_write(0);
        flush_cpu_dcache();             /* the results came by DMA: drop stale lines */
        return 0;
    default:
        return -1;
    }
}

static void dma_stop_all(void)
{
    densehw_wgt_dma_enable_write(0);
    densehw_act_dma_enable_write(0);
    densehw_res_dma_enable_write(0);
}

static const densehw_dma_ops dma = {NULL, dma_start, dma_wait};

/* -- interrupt -- */
static void densehw_isr(void)
{
    densehw_irq_handler(&dev);
}

static void set_wait(uint32_t mode)
{
    /* in interrupt mode the driver watches the flag that densehw_isr sets (dev.idle could
       sleep; the standard VexRiscv has no WFI, so it spins: no register reads) */
    dev.wait_mode = (int)mode;
    dev.timeout = ARRAY_TIMEOUT;
    dev.idle = NULL;
    dev.idle_arg = NULL;
}

static const char *mode_name(uint32_t mode)
{
    return mode == DENSEHW_WAIT_IRQ ? "irq" : "poll";
}

/* one layer: pack, run by DMA, unpack; cycles of the CPU (whole call) and of the array */
typedef struct {
    int rc;
    uint32_t cpu_cycles, pack_cycles, irqs;
    densehw_counters cnt;
} layer_run;

static layer_run run_layer(const densehw_layer *layer, const densehw_in_t *x, size_t ldx,
                           const uint8_t *codes, const int32_t *e0s, const densehw_out_t *bias,
                           uint32_t wait_mode, densehw_out_t *y)
{
    densehw_buffers bufs = {soc_wgt_buf, soc_act_buf, soc_res_buf};
    layer_run r;
    uint32_t t0, t1, t2, irqs0 = dev.irq_count;

    memset(&r, 0, sizeof r);
    t0 = timer_now();
    densehw_pack_weights(soc_wgt_buf, codes, layer->k, layer->k, layer->m, e0s, layer->e0, bias);
    densehw_pack_activations(soc_act_buf, x, ldx, layer->n, layer->k, layer->m);
    flush_cpu_dcache();
    t1 = timer_now();
    set_wait(wait_mode);
    r.rc = densehw_run_layer(&dev, layer, &dma, &bufs, &r.cnt);
    t2 = timer_now();
    if (r.rc)
        dma_stop_all();
    else
        densehw_unpack_results(y, layer->m, soc_res_buf, layer->n, layer->m);
    r.pack_cycles = t0 - t1;
    r.cpu_cycles = t1 - t2;
    r.irqs = dev.irq_count - irqs0;
    return r;
}

static void print_counters(const layer_run *r)
{
    printf(" busy=%lu active=%lu stall_act=%lu stall_wgt=%lu stall_res=%lu stall_drain=%lu"
           " cpu=%lu pack=%lu irqs=%lu",
           (unsigned long)r->cnt.cycles_busy, (unsigned long)r->cnt.cycles_active,
           (unsigned long)r->cnt.stall_act, (unsigned long)r->cnt.stall_wgt,
           (unsigned long)r->cnt.stall_res, (unsigned long)r->cnt.stall_drain,
           (unsigned long)r->cpu_cycles, (unsigned long)r->pack_cycles,
           (unsigned long)r->irqs);
}

static uint32_t compare(const densehw_out_t *got, const densehw_out_t *want, uint32_t count,
                        uint32_t *first)
{
    uint32_t i, bad = 0;
    for (i = 0; i < count; i++)
        if (got[i] != want[i]) {
            if (!bad)
                *first = i;
            bad++;
        }
    return bad;
}

/* -- 1. GEMM layers and error cases -- */
static uint32_t run_items(void)
{
    uint32_t i, fails = 0;

    for (i = 0; i < soc_n_items; i++) {
        const soc_item *it = &soc_items[i];
        if (it->kind == SOC_ITEM_BAD) {
            uint32_t t0, t1, irqs0 = dev.irq_count;
            int rc;
            set_wait(it->wait_mode);
            t0 = timer_now();
            densehw_configure(&dev, &it->layer);      /* no software check: the array's */
            densehw_start(&dev, &it->layer);
            rc = densehw_wait(&dev);
            t1 = timer_now();
            printf("@bad name=%s n=%lu k=%lu m=%lu e0=%ld wait=%s rc=%d error=0x%lx "
                   "want_error=0x%lx status=0x%lx irqs=%lu cpu=%lu\n", it->name,
                   (unsigned long)it->layer.n, (unsigned long)it->layer.k,
                   (unsigned long)it->layer.m, (long)it->layer.e0, mode_name(it->wait_mode), rc,
                   (unsigned long)dev.error, (unsigned long)it->want_error,
                   (unsigned long)dev.status, (unsigned long)(dev.irq_count - irqs0),
                   (unsigned long)(t0 - t1));
            if (rc != DENSEHW_E_HW || dev.error != it->want_error)
                fails++;
            continue;
        }
        {
            const densehw_layer *l = &it->layer;
            uint32_t first = 0, bad;
            layer_run r = run_layer(l, it->x, l->k, it->codes, it->e0s, it->bias, it->wait_mode,
                                    soc_y_buf);
            bad = r.rc ? l->n * l->m : compare(soc_y_buf, it->want, l->n * l->m, &first);
            printf("@gemm name=%s n=%lu k=%lu m=%lu options=0x%lx wait=%s rc=%d error=0x%lx "
                   "outputs=%lu mismatches=%lu", it->name, (unsigned long)l->n,
                   (unsigned long)l->k, (unsigned long)l->m, (unsigned long)l->options,
                   mode_name(it->wait_mode), r.rc, (unsigned long)dev.error,
                   (unsigned long)(l->n * l->m), (unsigned long)bad);
            print_counters(&r);
            if (bad && !r.rc)
                printf(" first=%lu got=0x%lx want=0x%lx", (unsigned long)first,
                       (unsigned long)soc_y_buf[first], (unsigned long)it->want[first]);
            printf("\n");
            if (r.rc || bad)
                fails++;
        }
    }
    return fails;
}

/* -- 2. the program -- */
static uint32_t array_mism[256], host_mism[256];
static const soc_step *cur_step;
static layer_run step_run;

static int gemm(const soc_step *st, uint32_t rows, const densehw_in_t *x, densehw_out_t *y)
{
    densehw_layer l;

    l.n = rows;
    l.k = st->k;
    l.m = st->m;
    l.e0 = st->e0;
    l.options = (st->relu ? DENSEHW_CTRL_RELU_MASK : 0u)
                | (st->abias ? DENSEHW_CTRL_BIAS_EN_MASK : 0u)
                | (st->e0s ? DENSEHW_CTRL_E0_PER_CHANNEL_MASK : 0u);
    cur_step = st;
    step_run = run_layer(&l, x, st->k, st->codes, st->e0s, st->abias, st->wait_mode, y);
    return step_run.rc;
}

static uint32_t run_program(void)
{
    uint32_t i, s, fails = 0, step_fails;

    for (s = 0; s < soc_images && s < 256u; s++)
        array_mism[s] = host_mism[s] = 0;
    for (i = 0; i < soc_n_steps; i++) {
        const soc_step *st = &soc_steps[i];
        soc_value *out = &soc_values[st->out];
        uint32_t t0, t1, bad = 0, outputs, first = 0;
        int rc;

        memset(&step_run, 0, sizeof step_run);
        t0 = timer_now();
        rc = dhw_run_step(i, gemm);
        t1 = timer_now();
        if (st->where_array) {
            uint32_t rows = soc_images * st->n, r;
            outputs = rows * st->m;
            for (r = 0; r < rows && !rc; r++) {
                uint32_t f, b = compare(soc_y_buf + (size_t)r * st->m,
                                        st->want_y + (size_t)r * st->m, st->m, &f);
                if (b && !bad)
                    first = r * st->m + f;
                bad += b;
                array_mism[r / st->n] += b;
            }
            if (rc)
                bad = outputs;
        } else {
            outputs = soc_images * out->size;
            for (s = 0; s < soc_images && !rc; s++) {
                uint32_t k;
                for (k = 0; k < out->size; k++)
                    if (out->buf[(size_t)s * out->size + k] != out->want[(size_t)s * out->size + k]) {
                        if (!bad)
                            first = s * out->size + k;
                        bad++;
                        host_mism[s]++;
                    }
            }
            if (rc)
                bad = outputs;
        }
        printf("@step id=%lu name=%s where=%s rc=%d outputs=%lu mismatches=%lu cpu_step=%lu",
               (unsigned long)i, st->name, st->where_array ? "array" : "host", rc,
               (unsigned long)outputs, (unsigned long)bad, (unsigned long)(t0 - t1));
        if (st->where_array) {
            printf(" n=%lu k=%lu m=%lu wait=%s", (unsigned long)(soc_images * st->n),
                   (unsigned long)st->k, (unsigned long)st->m, mode_name(st->wait_mode));
            print_counters(&step_run);
        }
        if (bad && !rc)
            printf(" first=%lu", (unsigned long)first);
        printf("\n");
        if (rc || bad)
            fails++;
    }
    step_fails = fails;
    {
        const soc_value *lv = &soc_values[soc_output_value];
        for (s = 0; s < soc_images; s++) {
            uint32_t pred = dhw_argmax(lv->buf + (size_t)s * lv->size, lv->size, lv->fmt);
            printf("@image i=%lu array_mismatches=%lu host_mismatches=%lu pred=%lu want=%lu "
                   "label=%lu\n", (unsigned long)s, (unsigned long)array_mism[s],
                   (unsigned long)host_mism[s], (unsigned long)pred,
                   (unsigned long)soc_want_pred[s], (unsigned long)soc_labels[s]);
            if (pred != soc_want_pred[s])
                fails++;
        }
    }
    (void)step_fails;
    return fails;
}

int main(void)
{
    int rc;
    uint32_t fails = 0;

    irq_setmask(0);
    irq_setie(1);
    uart_init();
    timer_start();
    printf("\n@start cpu=%s clk=%lu\n", CONFIG_CPU_HUMAN_NAME, (unsigned long)CONFIG_CLOCK_FREQUENCY);
    rc = densehw_init(&dev, DENSEHW_BASE);
    printf("@init rc=%d id=0x%lx version=0x%lx geometry=0x%lx\n", rc,
           (unsigned long)densehw_read(&dev, DENSEHW_REG_ID),
           (unsigned long)densehw_read(&dev, DENSEHW_REG_VERSION),
           (unsigned long)densehw_read(&dev, DENSEHW_REG_GEOMETRY));
    if (rc == DENSEHW_OK) {
        irq_attach(DENSEHW_INTERRUPT, densehw_isr);
        irq_setmask(irq_getmask() | (1u << DENSEHW_INTERRUPT));
        fails += run_items();
        fails += run_program();
    } else {
        fails++;
    }
    printf("@end fails=%lu irqs=%lu\n", (unsigned long)fails, (unsigned long)dev.irq_count);
    sim_finish_finish_write(1);
    for (;;)
        ;
    return 0;
}
