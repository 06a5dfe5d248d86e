/* dhw_float.c: see dhw_float.h. Only integer operations and IEEE binary64 +, *, / and
 * conversions (soft-float on a CPU without an FPU: exact by definition). */
#include "dhw_float.h"

typedef union {
    double d;
    uint64_t u;
} dbits;

#define WIDTH(f) (1u + (f).exp_bits + (f).frac_bits)
#define EXP_MAX(f) ((1u << (f).exp_bits) - 1u)
#define FRAC_MASK(f) ((1u << (f).frac_bits) - 1u)
#define SIGN_MASK(f) (1u << ((f).exp_bits + (f).frac_bits))
#define BIAS(f) ((int32_t)(1u << ((f).exp_bits - 1u)) - 1)
#define POS_INF(f) (EXP_MAX(f) << (f).frac_bits)
#define CANONICAL_NAN(f) (POS_INF(f) | (1u << ((f).frac_bits - 1u)))

double dhw_from_u64(uint64_t bits)
{
    dbits x;
    x.u = bits;
    return x.d;
}

static uint64_t to_u64(double d)
{
    dbits x;
    x.d = d;
    return x.u;
}

double dhw_from_f32(uint32_t bits)
{
    static const dhw_fmt fp32 = {8u, 23u};
    return dhw_decode(bits, fp32);      /* exact, without a float-to-double helper */
}

static double pow2(int32_t n)           /* 2**n, n in [-1022, 1023] */
{
    return dhw_from_u64((uint64_t)(n + 1023) << 52);
}

double dhw_decode(uint32_t bits, dhw_fmt f)
{
    uint32_t e = (bits >> f.frac_bits) & EXP_MAX(f), frac = bits & FRAC_MASK(f);
    int neg = (bits & SIGN_MASK(f)) != 0;
    double v;

    if (e == EXP_MAX(f)) {
        if (frac)
            return dhw_from_u64(0x7FF8000000000000ull);
        return dhw_from_u64(neg ? 0xFFF0000000000000ull : 0x7FF0000000000000ull);
    }
    if (e == 0)
        v = (double)frac * pow2(1 - BIAS(f) - (int32_t)f.frac_bits);
    else
        v = (double)(frac | (1u << f.frac_bits)) * pow2((int32_t)e - BIAS(f) - (int32_t)f.frac_bits);
    return neg ? -v : v;
}

uint32_t dhw_round(double v, dhw_fmt f)
{
    uint64_t b = to_u64(v);
    uint32_t sign = (b >> 63) ? SIGN_MASK(f) : 0u;
    uint32_t dexp = (uint32_t)(b >> 52) & 0x7FFu;
    int32_t emin = 1 - BIAS(f), emax = BIAS(f), lsb_exp = emin - (int32_t)f.frac_bits;
    int32_t lead, binade;
    uint32_t q;
    double a, scaled, rest;
    uint32_t body;

    if (dexp == 0x7FFu)
        return (b & 0xFFFFFFFFFFFFFull) ? CANONICAL_NAN(f) : (sign | POS_INF(f));
    if (dexp == 0u)                     /* zero, or a binary64 subnormal: far below any lsb */
        return sign;
    lead = (int32_t)dexp - 1023;        /* |v| in [2**lead, 2**(lead+1)) */
    if (lead < lsb_exp - 2)
        return sign;
    if (lead > emax)
        return sign | POS_INF(f);
    binade = lead < emin ? emin : lead;
    a = dhw_from_u64(b & 0x7FFFFFFFFFFFFFFFull);
    scaled = a * pow2((int32_t)f.frac_bits - binade);      /* exact: a power of two */
    q = (uint32_t)scaled;               /* truncation: 0 <= scaled < 2**(frac_bits + 1) */
    rest = scaled - (double)q;                              /* exact */
    if (rest > 0.5 || (rest == 0.5 && (q & 1u)))
        q++;
    body = ((uint32_t)(binade - emin) << f.frac_bits) + q;
    if (body >= POS_INF(f))
        body = POS_INF(f);
    return sign | body;
}

int dhw_is_nan(uint32_t bits, dhw_fmt f)
{
    return ((bits >> f.frac_bits) & EXP_MAX(f)) == EXP_MAX(f) && (bits & FRAC_MASK(f)) != 0;
}

uint32_t dhw_relu(uint32_t bits, dhw_fmt f)
{
    if (dhw_is_nan(bits, f))
        return CANONICAL_NAN(f);
    return (bits & SIGN_MASK(f)) ? 0u : bits;
}

int64_t dhw_order_key(uint32_t bits, dhw_fmt f)
{
    int64_t mag = (int64_t)(bits & ~SIGN_MASK(f) & ((1ull << WIDTH(f)) - 1u));
    return (bits & SIGN_MASK(f)) ? -mag - 1 : mag;
}
