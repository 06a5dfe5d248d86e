/* Host check of the firmware's program interpreter (soc/firmware/dhw_program.c): every step
 * of soc_data.c on the host CPU, array steps answered with the golden outputs (so each host
 * step sees the golden inputs), every value compared bit for bit. Driven by
 * tests/test_soc_firmware.py. Prints one line per step: "step <i> <outputs> <mismatches>". */
#include <stdio.h>
#include <string.h>

#include "dhw_float.h"
#include "dhw_program.h"

static int golden_gemm(const soc_step *st, uint32_t rows, const densehw_in_t *x,
                       densehw_out_t *y)
{
    (void)x;
    memcpy(y, st->want_y, (size_t)rows * st->m * sizeof *y);
    return 0;
}

int main(void)
{
    uint32_t i, s, k;

    for (i = 0; i < soc_n_steps; i++) {
        const soc_value *out = &soc_values[soc_steps[i].out];
        uint32_t bad = 0, n = soc_images * out->size;
        if (dhw_run_step(i, golden_gemm) < 0) {
            printf("step %u error\n", (unsigned)i);
            return 1;
        }
        for (k = 0; k < n; k++)
            if (out->buf[k] != out->want[k]) {
                if (!bad)
                    printf("first %u: got 0x%x want 0x%x\n", (unsigned)k,
                           (unsigned)out->buf[k], (unsigned)out->want[k]);
                bad++;
            }
        printf("step %u %u %u\n", (unsigned)i, (unsigned)n, (unsigned)bad);
        /* the next step starts from the golden value, as on the SoC when all is well */
        memcpy(out->buf, out->want, (size_t)n * sizeof *out->buf);
    }
    for (s = 0; s < soc_images; s++) {
        const soc_value *lv = &soc_values[soc_output_value];
        printf("pred %u %u %u\n", (unsigned)s,
               (unsigned)dhw_argmax(lv->buf + (size_t)s * lv->size, lv->size, lv->fmt),
               (unsigned)soc_want_pred[s]);
    }
    return 0;
}
