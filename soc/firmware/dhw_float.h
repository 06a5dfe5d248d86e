/* dhw_float.h: the exact host arithmetic of densehw programs (docs/deployment.md): raw patterns
 * of any binary format of at most 32 bits <-> binary64, one rounding to nearest even. Mirrors
 * sw.runtime (decode, round_to_format, relu_bits, the max-pool order key) bit for bit. */
#ifndef DHW_FLOAT_H
#define DHW_FLOAT_H

#include <stdint.h>

#include "soc_data.h"

double dhw_decode(uint32_t bits, dhw_fmt f);
uint32_t dhw_round(double v, dhw_fmt f);
uint32_t dhw_relu(uint32_t bits, dhw_fmt f);
int dhw_is_nan(uint32_t bits, dhw_fmt f);
int64_t dhw_order_key(uint32_t bits, dhw_fmt f);   /* monotone for non-NaN, -0 < +0 */
double dhw_from_u64(uint64_t bits);
double dhw_from_f32(uint32_t bits);

#endif
