/* Denoising score matching batches and classifier-free guidance (see
 * diffusion.h and ../shared/spec/diffusion_math.md). */
#include "dfrun/diffusion.h"
#include <math.h>
#include <stdlib.h>

void df_dsm_batch(const df_schedule *s, const df_dsm_cfg *c, const float *x0, const int32_t *y0,
                  int64_t B, int64_t dim, int dropout, df_rng *r, float *xt, float *target,
                  float *weight, float *t, int32_t *y) {
    int discrete = s->kind != DF_SCHED_VP;
    const uint64_t per = DF_DSM_DRAWS(dim);
#pragma omp parallel for schedule(static) if (B * dim > 65536)
    for (int64_t i = 0; i < B; i++) {
        df_rng ri = {r->key, r->counter + (uint64_t)i * per};
        float u[2];
        df_rng_uniform(&ri, u, 2);
        double ti =
            discrete ? (double)(1 + (int)(u[0] * s->T)) / s->T : c->t_min + (1 - c->t_min) * u[0];
        t[i] = (float)(ti > 1 ? 1 : ti);
        if (y)
            y[i] =
                dropout && u[1] < c->label_dropout ? c->null_class : (y0 ? y0[i] : c->null_class);
        float *e = target + i * dim, *o = xt + i * dim; /* eps, turned into the target */
        df_rng_normal(&ri, e, dim);
        double ab = df_sched_ab(s, t[i]), a = sqrt(ab), sd = sqrt(1 - ab);
        weight[i] = c->predict_score ? (float)sd : 1.0f;
        const float *x = x0 + i * dim;
        for (int64_t j = 0; j < dim; j++) {
            o[j] = (float)(a * x[j] + sd * e[j]);
            if (c->predict_score) e[j] = -e[j];
        }
    }
    r->counter += (uint64_t)B * per;
}

void df_guided_eps(const float *cond, const float *uncond, int64_t n, double w, double scale,
                   float *eps) {
    for (int64_t i = 0; i < n; i++) {
        double e = cond[i], e0 = uncond ? uncond[i] : e;
        eps[i] = (float)(scale * (e0 + w * (e - e0)));
    }
}
