/* dhw_program.c: see dhw_program.h; each op mirrors its sw/runtime.py definition. */
#include <stddef.h>

#include "dhw_float.h"
#include "dhw_program.h"

static double blob(const uint64_t *p, uint32_t i)
{
    return dhw_from_u64(p[i]);
}

/* y * scale + shift per channel, round, ReLU (sw.runtime._affine_relu) */
static uint32_t affine_relu(const soc_step *st, double y, uint32_t ch, dhw_fmt out)
{
    uint32_t bits;

    if (st->scale)
        y = y * blob(st->scale, ch);
    if (st->shift)
        y = y + blob(st->shift, ch);
    bits = dhw_round(y, out);
    return st->relu ? dhw_relu(bits, out) : bits;
}

/* element (channel c, row y, column x) of one sample of a value, or -1 when padded */
static int64_t at(const soc_value *v, uint32_t c, int64_t y, int64_t x)
{
    if (y < 0 || x < 0 || y >= (int64_t)v->h || x >= (int64_t)v->w)
        return -1;
    return (int64_t)((c * v->h + (uint32_t)y) * v->w + (uint32_t)x);
}

/* the patch element k (channel, kernel row, kernel column) of output position (oy, ox) */
static int64_t patch(const soc_step *st, const soc_value *in, uint32_t k, uint32_t oy,
                     uint32_t ox)
{
    uint32_t per = st->kh * st->kw, c = k / per, r = k % per;
    int64_t y = (int64_t)(oy * st->sh + (r / st->kw) * st->dh) - (int64_t)st->ph;
    int64_t x = (int64_t)(ox * st->sw + (r % st->kw) * st->dw) - (int64_t)st->pw;
    return at(in, c, y, x);
}

static void fp_layer(const soc_step *st, const soc_value *in, soc_value *out, uint32_t s)
{
    const uint32_t *a = in->buf + (size_t)s * in->size;
    uint32_t *o = out->buf + (size_t)s * out->size;
    uint32_t positions = st->op == OP_FP_LINEAR ? 1u : out->h * out->w;
    uint32_t p, m, k;

    for (m = 0; m < st->m; m++) {
        for (p = 0; p < positions; p++) {
            double acc = 0.0;
            for (k = 0; k < st->k; k++) {
                double x = 0.0;
                if (st->op == OP_FP_LINEAR) {
                    x = dhw_decode(a[k], in->fmt);
                } else {
                    int64_t idx = patch(st, in, k, p / out->w, p % out->w);
                    if (idx >= 0)
                        x = dhw_decode(a[idx], in->fmt);
                }
                acc = acc + x * blob(st->w, m * st->k + k);
            }
            if (st->bias)
                acc = acc + blob(st->bias, m);
            o[m * positions + p] = affine_relu(st, acc, m, out->fmt);
        }
    }
}

static void maxpool(const soc_step *st, const soc_value *in, soc_value *out, uint32_t s)
{
    const uint32_t *a = in->buf + (size_t)s * in->size;
    uint32_t *o = out->buf + (size_t)s * out->size;
    uint32_t c, oy, ox, ky, kx;
    const uint32_t nan = ((1u << in->fmt.exp_bits) - 1u) << in->fmt.frac_bits
                         | (1u << (in->fmt.frac_bits - 1u));

    for (c = 0; c < out->c; c++)
        for (oy = 0; oy < out->h; oy++)
            for (ox = 0; ox < out->w; ox++) {
                int have = 0, any_nan = 0;
                int64_t best = 0;
                uint32_t best_bits = 0;
                for (ky = 0; ky < st->kh; ky++)
                    for (kx = 0; kx < st->kw; kx++) {
                        int64_t idx = at(in, c, (int64_t)(oy * st->sh + ky) - (int64_t)st->ph,
                                         (int64_t)(ox * st->sw + kx) - (int64_t)st->pw);
                        int64_t key;
                        if (idx < 0)
                            continue;
                        if (dhw_is_nan(a[idx], in->fmt)) {
                            any_nan = 1;
                            continue;
                        }
                        key = dhw_order_key(a[idx], in->fmt);
                        if (!have || key > best) {
                            best = key;
                            best_bits = a[idx];
                            have = 1;
                        }
                    }
                {
                    uint32_t bits = any_nan ? nan : best_bits;
                    if (out->fmt.exp_bits != in->fmt.exp_bits
                        || out->fmt.frac_bits != in->fmt.frac_bits)
                        bits = dhw_round(dhw_decode(bits, in->fmt), out->fmt);
                    o[(c * out->h + oy) * out->w + ox] = bits;
                }
            }
}

static int same_fmt(dhw_fmt a, dhw_fmt b)
{
    return a.exp_bits == b.exp_bits && a.frac_bits == b.frac_bits;
}

static int host_step(const soc_step *st, uint32_t s)
{
    soc_value *in = st->in0 >= 0 ? &soc_values[st->in0] : NULL;
    soc_value *in1 = st->in1 >= 0 ? &soc_values[st->in1] : NULL;
    soc_value *out = &soc_values[st->out];
    uint32_t *o = out->buf + (size_t)s * out->size;
    const uint32_t *a = in ? in->buf + (size_t)s * in->size : NULL;
    uint32_t i, per;

    switch (st->op) {
    case OP_INPUT:
        for (i = 0; i < out->size; i++)
            o[i] = dhw_round(dhw_from_f32(soc_input_bits[(size_t)s * soc_input_size + i]),
                             out->fmt);
        return 0;
    case OP_CONVERT:
    case OP_FLATTEN:
    case OP_RELU:
        for (i = 0; i < out->size; i++) {
            uint32_t bits = a[i];
            if (!same_fmt(in->fmt, out->fmt))
                bits = dhw_round(dhw_decode(bits, in->fmt), out->fmt);
            o[i] = st->op == OP_RELU ? dhw_relu(bits, out->fmt) : bits;
        }
        return 0;
    case OP_FP_LINEAR:
    case OP_FP_CONV:
        fp_layer(st, in, out, s);
        return 0;
    case OP_AFFINE:
        per = out->h * out->w;
        for (i = 0; i < out->size; i++)
            o[i] = affine_relu(st, dhw_decode(a[i], in->fmt), i / per, out->fmt);
        return 0;
    case OP_ADD:
        for (i = 0; i < out->size; i++) {
            double y = dhw_decode(a[i], in->fmt)
                       + dhw_decode(in1->buf[(size_t)s * in1->size + i], in1->fmt);
            uint32_t bits = dhw_round(y, out->fmt);
            o[i] = st->relu ? dhw_relu(bits, out->fmt) : bits;
        }
        return 0;
    case OP_MAXPOOL:
        maxpool(st, in, out, s);
        return 0;
    case OP_AVGPOOL:
        per = in->h * in->w;
        for (i = 0; i < in->c; i++) {
            double acc = 0.0;
            uint32_t t;
            for (t = 0; t < per; t++)
                acc = acc + dhw_decode(a[i * per + t], in->fmt);
            o[i] = dhw_round(acc / (double)per, out->fmt);
        }
        return 0;
    default:
        return -1;
    }
}

static int array_step(const soc_step *st, dhw_gemm_fn gemm)
{
    soc_value *in = &soc_values[st->in0];
    soc_value *out = &soc_values[st->out];
    uint32_t rows = soc_images * st->n, s, p, k, m;
    int rc;

    for (s = 0; s < soc_images; s++) {                  /* im2col (or flatten) of the bits */
        const uint32_t *a = in->buf + (size_t)s * in->size;
        for (p = 0; p < st->n; p++) {
            densehw_in_t *row = soc_x_buf + ((size_t)s * st->n + p) * st->k;
            for (k = 0; k < st->k; k++) {
                int64_t idx = st->op == OP_ARRAY_LINEAR ? (int64_t)k
                              : patch(st, in, k, p / out->w, p % out->w);
                row[k] = (densehw_in_t)(idx >= 0 ? a[idx] : 0u);
            }
        }
    }
    rc = gemm(st, rows, soc_x_buf, soc_y_buf);
    if (rc < 0)
        return rc;
    for (s = 0; s < soc_images; s++)                    /* channels first */
        for (p = 0; p < st->n; p++)
            for (m = 0; m < st->m; m++)
                out->buf[(size_t)s * out->size + (size_t)m * st->n + p]
                    = soc_y_buf[((size_t)s * st->n + p) * st->m + m];
    return 0;
}

int dhw_run_step(uint32_t i, dhw_gemm_fn gemm)
{
    const soc_step *st = &soc_steps[i];
    uint32_t s;

    if (st->where_array)
        return array_step(st, gemm);
    for (s = 0; s < soc_images; s++)
        if (host_step(st, s) < 0)
            return -1;
    return 0;
}

uint32_t dhw_argmax(const uint32_t *bits, uint32_t count, dhw_fmt f)
{
    uint32_t i, best = 0;
    double best_v = 0.0;

    for (i = 0; i < count; i++) {
        double v = dhw_is_nan(bits[i], f) ? dhw_from_u64(0xFFF0000000000000ull)
                                          : dhw_decode(bits[i], f);
        if (i == 0 || v > best_v) {
            best = i;
            best_v = v;
        }
    }
    return best;
}
