/* soc_data.h: what the generated soc_data.c holds (soc/firmware_data.py writes it): the GEMM
 * checks, the compiled program with its inputs, and the golden model's expected bits. */
#ifndef SOC_DATA_H
#define SOC_DATA_H

#include <stdint.h>

#include "densehw_driver.h"

typedef struct {
    uint8_t exp_bits, frac_bits;
} dhw_fmt;

/* -- GEMM layers and error cases -- */
#define SOC_ITEM_GEMM 0u
#define SOC_ITEM_BAD 1u         /* a bad shape written to the registers */

typedef struct {
    const char *name;
    uint32_t kind;
    uint32_t wait_mode;                 /* DENSEHW_WAIT_POLL or DENSEHW_WAIT_IRQ */
    densehw_layer layer;
    const densehw_in_t *x;              /* n * k */
    const uint8_t *codes;               /* m * k */
    const int32_t *e0s;                 /* per channel, or NULL */
    const densehw_out_t *bias;          /* or NULL */
    const densehw_out_t *want;          /* n * m, golden model */
    uint32_t want_error;                /* SOC_ITEM_BAD: the ERROR bits the array must set */
} soc_item;

extern const soc_item soc_items[];
extern const uint32_t soc_n_items;

/* -- the program (sw/program.py) -- */
enum {
    OP_INPUT, OP_CONVERT, OP_FP_LINEAR, OP_FP_CONV, OP_AFFINE, OP_RELU, OP_ADD, OP_MAXPOOL,
    OP_AVGPOOL, OP_FLATTEN, OP_ARRAY_LINEAR, OP_ARRAY_CONV
};

typedef struct {
    uint32_t size, c, h, w;             /* per sample: C x H x W (1 for absent dimensions) */
    dhw_fmt fmt;
    uint32_t *buf;                      /* images * size patterns */
    const uint32_t *want;               /* golden model: images * size patterns */
} soc_value;

typedef struct {
    const char *name;
    uint32_t op, where_array;
    int32_t in0, in1, out;
    uint32_t kh, kw, sh, sw, ph, pw, dh, dw;
    uint32_t n, k, m, relu;             /* array: GEMM rows per sample; fp layers: m x k */
    const uint64_t *w, *bias, *scale, *shift;   /* binary64 bit patterns, or NULL */
    int32_t e0;
    const int32_t *e0s;                 /* array: per-channel offsets, or NULL */
    const uint8_t *codes;               /* array: m * k codes */
    const densehw_out_t *abias;         /* array: raw out_fmt bias, or NULL */
    uint32_t wait_mode;
    const densehw_out_t *want_y;        /* array: golden GEMM output, (images * n) x m */
} soc_step;

extern soc_value soc_values[];
extern const soc_step soc_steps[];
extern const uint32_t soc_n_steps, soc_images, soc_output_value, soc_input_size;
extern const uint32_t soc_input_bits[];     /* images * input size, float32 patterns */
extern const uint8_t soc_labels[], soc_want_pred[];

/* DMA and GEMM buffers, sized for the largest layer */
extern uint32_t soc_wgt_buf[], soc_act_buf[], soc_res_buf[];
extern densehw_in_t soc_x_buf[];
extern densehw_out_t soc_y_buf[];

#endif /* SOC_DATA_H */
