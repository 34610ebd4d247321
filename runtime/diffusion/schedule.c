/* Noise schedules (see diffusion.h and ../shared/spec/diffusion_math.md). */
#include "dfrun/diffusion.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AB_MIN 1e-5 /* alpha_bar floor of the discrete schedules at t = 1 */

df_status df_schedule_init(df_schedule *s, df_sched_kind kind, double bmin, double bmax, int T,
                           double power) {
    if (!s) return df_seterr(DF_EINVAL, "df_schedule_init: NULL schedule");
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->beta_min = bmin;
    s->beta_max = bmax;
    s->T = T;
    s->power = power;
    if (kind == DF_SCHED_VP) {
        if (!(bmin >= 0 && bmax > bmin && bmax < 1e4))
            return df_seterr(DF_EINVAL, "VP schedule: need 0 <= beta_min < beta_max, got %g, %g",
                             bmin, bmax);
        return DF_OK;
    }
    if (kind < DF_SCHED_VP || kind > DF_SCHED_POLY)
        return df_seterr(DF_EINVAL, "unknown schedule %d", kind);
    if (T < 1 || T > 1000000)
        return df_seterr(DF_EINVAL, "discrete schedule: T = %d out of range 1..1e6", T);
    s->ab = malloc((size_t)(T + 1) * sizeof(double));
    if (!s->ab) return df_seterr(DF_ENOMEM, "out of memory");
    s->ab[0] = 1.0;
    if (kind == DF_SCHED_DDPM_LINEAR) {
        if (!(bmin > 0 && bmax >= bmin && bmax < 1))
            return df_schedule_free(s),
                   df_seterr(DF_EINVAL,
                             "linear betas: need 0 < beta_min <= beta_max < 1, got %g, %g", bmin,
                             bmax);
        for (int i = 1; i <= T; i++) {
            double b = T == 1 ? bmin : bmin + (bmax - bmin) * (i - 1) / (T - 1);
            s->ab[i] = s->ab[i - 1] * (1 - b);
        }
    } else if (kind == DF_SCHED_COSINE) {
        double f0 = cos((0.008 / 1.008) * M_PI / 2);
        f0 *= f0;
        for (int i = 1; i <= T; i++) {
            double f = cos(((double)i / T + 0.008) / 1.008 * M_PI / 2);
            double ab = f * f / f0, b = 1 - ab / s->ab[i - 1];
            if (b > 0.999) b = 0.999;
            s->ab[i] = s->ab[i - 1] * (1 - b);
        }
    } else { /* poly: 1 - alpha_bar(t) = t^power, floored */
        if (!(power > 0 && power < 100))
            return df_schedule_free(s),
                   df_seterr(DF_EINVAL, "poly schedule: power %g out of (0, 100)", power);
        for (int i = 1; i <= T; i++) {
            double ab = 1 - pow((double)i / T, power);
            s->ab[i] = ab < AB_MIN ? AB_MIN : ab;
        }
    }
    for (int i = 1; i <= T; i++)
        if (s->ab[i] < AB_MIN) s->ab[i] = AB_MIN;
    return DF_OK;
}

void df_schedule_free(df_schedule *s) {
    if (s) free(s->ab), s->ab = NULL;
}

double df_sched_ab(const df_schedule *s, double t) {
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    if (s->kind == DF_SCHED_VP)
        return exp(-(s->beta_min * t + 0.5 * t * t * (s->beta_max - s->beta_min)));
    double u = t * s->T;
    int i = (int)floor(u);
    if (i >= s->T) return s->ab[s->T];
    double f = u - i; /* log-linear between grid points */
    return exp((1 - f) * log(s->ab[i]) + f * log(s->ab[i + 1]));
}

double df_sched_beta(const df_schedule *s, double t) {
    if (s->kind == DF_SCHED_VP) return s->beta_min + t * (s->beta_max - s->beta_min);
    double h = 0.5 / s->T, a = t - h < 0 ? 0 : t - h, b = t + h > 1 ? 1 : t + h;
    return -(log(df_sched_ab(s, b)) - log(df_sched_ab(s, a))) / (b - a);
}

double df_sched_lambda(const df_schedule *s, double t) {
    double ab = df_sched_ab(s, t);
    return 0.5 * log(ab / (1 - ab));
}

double df_sched_t_of_lambda(const df_schedule *s, double lambda) {
    if (s->kind == DF_SCHED_VP) { /* closed form through sigma = e^-lambda */
        double sig2 = exp(-2 * lambda), d = s->beta_max - s->beta_min;
        return (-s->beta_min + sqrt(s->beta_min * s->beta_min + 2 * d * log1p(sig2))) / d;
    }
    double lo = 0, hi = 1; /* lambda decreases with t */
    for (int k = 0; k < 100; k++) {
        double mid = 0.5 * (lo + hi);
        if (df_sched_lambda(s, mid) > lambda)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}
