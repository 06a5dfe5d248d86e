/* dhw_program.h: a C interpreter of densehw programs (sw/program.py) for firmware: the host
 * steps in the exact arithmetic of docs/deployment.md, the array steps through a GEMM callback
 * (the array, by DMA). All images of a batch go through each step before the next. */
#ifndef DHW_PROGRAM_H
#define DHW_PROGRAM_H

#include "soc_data.h"

/* runs y (rows x m) = array(x (rows x k)) for an array step; 0 or < 0 */
typedef int (*dhw_gemm_fn)(const soc_step *step, uint32_t rows, const densehw_in_t *x,
                           densehw_out_t *y);

/* runs step `i` on all soc_images images; 0, or < 0 for an unsupported step or a GEMM error */
int dhw_run_step(uint32_t i, dhw_gemm_fn gemm);
/* index of the largest value (NaN below every number, ties to the lowest index) */
uint32_t dhw_argmax(const uint32_t *bits, uint32_t count, dhw_fmt f);

#endif
