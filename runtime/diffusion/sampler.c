/* The samplers: reverse SDE, DDPM, DDIM, PF-ODE Heun, DPM-Solver++(2M) and
 * Langevin predictor-corrector (see diffusion.h and
 * ../shared/spec/diffusion_math.md). */
#include "dfrun/diffusion.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *names[] = {"euler_maruyama", "ddpm",     "ddim",
                              "pf_ode_heun",    "dpmpp_2m", "pc_langevin"};
int df_sampler_by_name(const char *name) {
    for (int i = 0; name && i < 6; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}
const char *df_sampler_name(int k) {
    return k >= 0 && k < 6 ? names[k] : "?";
}

df_sampler_cfg df_sampler_defaults(df_sampler_kind kind) {
    df_sampler_cfg c = {kind, 1000, 1e-3, 0.0, 0.16, 1, 0.0};
    if (kind == DF_SAMPLER_DDIM) c.steps = 50;
    if (kind == DF_SAMPLER_PF_HEUN) c.steps = 50;
    if (kind == DF_SAMPLER_DPMPP_2M) c.steps = 10;
    if (kind == DF_SAMPLER_PC_LANGEVIN) c.steps = 500;
    return c;
}

/* ---- helpers ---- */
typedef struct {
    const df_schedule *s;
    df_eps_fn fn;
    void *ctx;
    int64_t n, dim, N;
    float *eps, *z, *tmp;
    double clip; /* of x0^ (0: none) */
} run;

static df_status eps_at(run *r, const float *x, double t) {
    return r->fn(r->ctx, x, r->n, r->dim, t, r->eps);
}

/* x0^ = (x - s eps) / a, into out (out may be x). With clipping, x0^ is
 * clipped and eps made consistent with it: eps = (x - a x0^) / s, as
 * diffusers' clip_sample does. */
static void x0_hat(const run *r, const float *x, double t, float *out) {
    double ab = df_sched_ab(r->s, t), a = sqrt(ab), s = sqrt(1 - ab), c = r->clip;
    for (int64_t i = 0; i < r->N; i++) {
        double x0 = (x[i] - s * r->eps[i]) / a;
        if (c > 0 && (x0 > c || x0 < -c)) {
            x0 = x0 > c ? c : -c;
            r->eps[i] = (float)((x[i] - a * x0) / s);
        }
        out[i] = (float)x0;
    }
}

/* times: uniform in t from 1 to t_min (steps + 1 points) */
static double t_uniform(const df_sampler_cfg *c, int k) {
    return 1.0 + (c->t_min - 1.0) * k / c->steps;
}

df_status df_sample(const df_schedule *s, const df_sampler_cfg *cfg, df_eps_fn fn, void *ctx,
                    float *x, int64_t n, int64_t dim, df_rng *rng,
                    void (*traj)(void *, const float *, double, int), void *tctx) {
    if (!s || !cfg || !fn || !x || !rng || n < 1 || dim < 1)
        return df_seterr(DF_EINVAL, "df_sample: bad arguments");
    if (cfg->steps < 1 || cfg->steps > 1000000)
        return df_seterr(DF_EINVAL, "df_sample: steps = %d out of range 1..1e6", cfg->steps);
    if (!(cfg->t_min > 0 && cfg->t_min < 1))
        return df_seterr(DF_EINVAL, "df_sample: t_min = %g must be in (0, 1)", cfg->t_min);
    if (!(cfg->eta >= 0 && cfg->eta <= 1))
        return df_seterr(DF_EINVAL, "df_sample: eta = %g outside [0, 1]", cfg->eta);
    if (!(cfg->clip_x0 >= 0))
        return df_seterr(DF_EINVAL, "df_sample: clip_x0 = %g must be >= 0", cfg->clip_x0);
    run r = {s, fn, ctx, n, dim, n * dim, NULL, NULL, NULL, cfg->clip_x0};
    r.eps = malloc((size_t)r.N * 4);
    r.z = malloc((size_t)r.N * 4);
    r.tmp = malloc((size_t)r.N * 4 * 2);
    float *prev_d = r.tmp + r.N; /* DPM++ 2M: previous D */
    if (!r.eps || !r.z || !r.tmp) {
        free(r.eps), free(r.z), free(r.tmp);
        return df_seterr(DF_ENOMEM, "df_sample: out of memory");
    }
    df_status st = DF_OK;
    df_rng_normal(rng, x, r.N);
    int K = cfg->steps;
    switch (cfg->kind) {
    case DF_SAMPLER_EULER_MARUYAMA:
    case DF_SAMPLER_PC_LANGEVIN:
        for (int k = 0; k < K && !st; k++) {
            double t = t_uniform(cfg, k), tn = t_uniform(cfg, k + 1), dt = t - tn;
            double ab = df_sched_ab(s, t), sd = sqrt(1 - ab), beta = df_sched_beta(s, t);
            if (cfg->kind == DF_SAMPLER_PC_LANGEVIN) /* corrector at time t */
                for (int c = 0; c < cfg->corrector_steps && !st; c++) {
                    if ((st = eps_at(&r, x, t))) break;
                    df_rng_normal(rng, r.z, r.N);
                    double gn = 0, zn = 0; /* norms per sample, averaged */
                    for (int64_t b = 0; b < n; b++) {
                        double g2 = 0, z2 = 0;
                        for (int64_t j = 0; j < dim; j++) {
                            double g = -r.eps[b * dim + j] / sd;
                            g2 += g * g;
                            z2 += (double)r.z[b * dim + j] * r.z[b * dim + j];
                        }
                        gn += sqrt(g2) / n;
                        zn += sqrt(z2) / n;
                    }
                    double alpha = 1 - beta * dt; /* 1 - beta_i of the discretisation */
                    double step =
                        2 * alpha * (cfg->snr * zn / (gn + 1e-12)) * (cfg->snr * zn / (gn + 1e-12));
                    for (int64_t i = 0; i < r.N; i++)
                        x[i] += (float)(step * (-r.eps[i] / sd) + sqrt(2 * step) * r.z[i]);
                }
            if (st || (st = eps_at(&r, x, t))) break;
            int last = k == K - 1;
            if (!last) df_rng_normal(rng, r.z, r.N);
            /* x <- x + dt (1/2 beta x + beta score) + sqrt(beta dt) z, score = -eps / s */
            for (int64_t i = 0; i < r.N; i++) {
                double score = -r.eps[i] / sd;
                x[i] += (float)(dt * (0.5 * beta * x[i] + beta * score) +
                                (last ? 0 : sqrt(beta * dt) * r.z[i]));
            }
            if (traj) traj(tctx, x, tn, k);
        }
        break;
    case DF_SAMPLER_DDPM:
    case DF_SAMPLER_DDIM:
        for (int k = 0; k < K && !st; k++) {
            double t = t_uniform(cfg, k), tp = t_uniform(cfg, k + 1);
            if ((st = eps_at(&r, x, t))) break;
            double abt = df_sched_ab(s, t), abp = df_sched_ab(s, tp);
            int last = k == K - 1; /* no noise on the last step */
            if (last)
                memset(r.z, 0, (size_t)r.N * 4);
            else
                df_rng_normal(rng, r.z, r.N);
            if (cfg->kind == DF_SAMPLER_DDPM) { /* respaced ancestral step: alpha = ab_t / ab_p */
                double alpha = abt / abp, beta = 1 - alpha;
                double var = beta * (1 - abp) / (1 - abt);
                for (int64_t i = 0; i < r.N; i++)
                    x[i] = (float)((x[i] - beta / sqrt(1 - abt) * r.eps[i]) / sqrt(alpha) +
                                   sqrt(var) * r.z[i]);
            } else {
                double sig = cfg->eta * sqrt((1 - abp) / (1 - abt)) * sqrt(1 - abt / abp);
                double c = sqrt(fmax(1 - abp - sig * sig, 0));
                x0_hat(&r, x, t, r.tmp);
                for (int64_t i = 0; i < r.N; i++)
                    x[i] = (float)(sqrt(abp) * r.tmp[i] + c * r.eps[i] + sig * r.z[i]);
            }
            if (traj) traj(tctx, x, tp, k);
        }
        /* end on the noise-free estimate x0^ at t_min */
        if (!st && !(st = eps_at(&r, x, cfg->t_min))) x0_hat(&r, x, cfg->t_min, x);
        break;
    case DF_SAMPLER_PF_HEUN: {
        /* EDM form: xt = x / a, sigma = s / a; Karras grid from sigma(1) to sigma(t_min), then 0 */
        double abmax = df_sched_ab(s, 1.0), abmin = df_sched_ab(s, cfg->t_min);
        double smax = sqrt((1 - abmax) / abmax), smin = sqrt((1 - abmin) / abmin);
        double r7a = pow(smax, 1.0 / 7), r7b = pow(smin, 1.0 / 7);
        double sig = smax, a0 = sqrt(abmax);
        for (int64_t i = 0; i < r.N; i++) x[i] = (float)(x[i] / a0 * 1.0); /* xt = x / a */
        float *xt = x, *d = r.tmp, *xe = r.z;
        for (int k = 0; k < K && !st; k++) {
            double sn = k + 1 < K ? pow(r7a + (k + 1.0) / (K - 1) * (r7b - r7a), 7) : 0.0;
            if (K == 1) sn = 0;
            /* D(xt, sigma): x = a xt at the t of sigma */
            double t = df_sched_t_of_lambda(s, -log(sig)), ab = df_sched_ab(s, t), a = sqrt(ab);
            for (int64_t i = 0; i < r.N; i++) xe[i] = (float)(a * xt[i]);
            if ((st = eps_at(&r, xe, t))) break;
            for (int64_t i = 0; i < r.N; i++) d[i] = (float)(r.eps[i]); /* (xt - D)/sigma = eps */
            if (sn <= 0) {
                for (int64_t i = 0; i < r.N; i++) xt[i] = (float)(xt[i] - sig * d[i]); /* D */
                sig = 0;
                break;
            }
            for (int64_t i = 0; i < r.N; i++) xe[i] = (float)(xt[i] + (sn - sig) * d[i]);
            double t2 = df_sched_t_of_lambda(s, -log(sn)), a2 = sqrt(df_sched_ab(s, t2));
            for (int64_t i = 0; i < r.N; i++) xe[i] = (float)(a2 * xe[i]);
            if ((st = eps_at(&r, xe, t2))) break;
            for (int64_t i = 0; i < r.N; i++)
                xt[i] = (float)(xt[i] + (sn - sig) * 0.5 * (d[i] + r.eps[i]));
            sig = sn;
            if (traj) traj(tctx, xt, t2, k);
        }
        break;
    }
    case DF_SAMPLER_DPMPP_2M: {
        /* grid uniform in lambda from t = 1 to t_min */
        double l0 = df_sched_lambda(s, 1.0), l1 = df_sched_lambda(s, cfg->t_min);
        double lam_prev = 0;
        for (int k = 0; k < K && !st; k++) {
            double li = l0 + (l1 - l0) * k / K, ln = l0 + (l1 - l0) * (k + 1) / K;
            double t = k == 0 ? 1.0 : df_sched_t_of_lambda(s, li);
            double tn = k + 1 == K ? cfg->t_min : df_sched_t_of_lambda(s, ln);
            double ab = df_sched_ab(s, t), abn = df_sched_ab(s, tn);
            double si = sqrt(1 - ab), sn = sqrt(1 - abn), an = sqrt(abn), h = ln - li;
            if ((st = eps_at(&r, x, t))) break;
            x0_hat(&r, x, t, r.z); /* D_i */
            int last = k + 1 == K;
            for (int64_t i = 0; i < r.N; i++) {
                double D = r.z[i];
                if (k > 0 && !last) {
                    double rr = (li - lam_prev) / h;
                    D = (1 + 1 / (2 * rr)) * r.z[i] - (1 / (2 * rr)) * prev_d[i];
                }
                x[i] = (float)((sn / si) * x[i] + an * (1 - exp(-h)) * D);
            }
            memcpy(prev_d, r.z, (size_t)r.N * 4);
            lam_prev = li;
            if (last) { /* end on the noise-free estimate at t_min */
                if ((st = eps_at(&r, x, tn))) break;
                x0_hat(&r, x, tn, x);
            }
            if (traj) traj(tctx, x, tn, k);
        }
        break;
    }
    default:
        st = df_seterr(DF_EINVAL, "df_sample: unknown sampler %d", cfg->kind);
    }
    free(r.eps);
    free(r.z);
    free(r.tmp);
    return st;
}
