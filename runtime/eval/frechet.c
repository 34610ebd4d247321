/* The Frechet distance between two Gaussians fitted to feature sets:
 * ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), with the PSD
 * square roots from a cyclic Jacobi eigen-decomposition (all in double). */
#include "dfrun/eval.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Symmetric eigen-decomposition by cyclic Jacobi rotations: a [n, n] is
 * destroyed, w [n] gets the eigenvalues, v [n, n] the eigenvectors as columns. */
static void jacobi(double *a, int n, double *w, double *v) {
    for (int i = 0; i < n * n; i++) v[i] = 0;
    for (int i = 0; i < n; i++) v[i * n + i] = 1;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
        if (off < 1e-22) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) w[i] = a[i * n + i];
}

/* out [n, n] = a^1/2 for a symmetric PSD a [n, n] (negative eigenvalues from
 * rounding clamped to 0); tmp: 2 n^2 + n doubles of scratch. */
static void sqrtm(const double *a, int n, double *out, double *tmp) {
    double *t = tmp, *v = tmp + (size_t)n * n, *w = tmp + 2 * (size_t)n * n;
    memcpy(t, a, sizeof(double) * n * n);
    jacobi(t, n, w, v);
    for (int k = 0; k < n; k++) w[k] = sqrt(fmax(w[k], 0));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += v[i * n + k] * w[k] * v[j * n + k];
            out[i * n + j] = s;
        }
}

/* mean mu [d] and unbiased covariance cov [d, d] of f [n, d] */
static void moments(const float *f, int64_t n, int d, double *mu, double *cov) {
    for (int j = 0; j < d; j++) {
        mu[j] = 0;
        for (int64_t i = 0; i < n; i++) mu[j] += f[i * d + j];
        mu[j] /= n;
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += (f[i * d + a] - mu[a]) * (f[i * d + b] - mu[b]);
            cov[a * d + b] = cov[b * d + a] = s / (n > 1 ? n - 1 : 1);
        }
}

/* c [d, d] = a [d, d] b [d, d] */
static void matmul(const double *a, const double *b, int d, double *c) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += a[i * d + k] * b[k * d + j];
            c[i * d + j] = s;
        }
}

double df_frechet(const float *f1, int64_t n1, const float *f2, int64_t n2, int d) {
    if (!f1 || !f2 || n1 < 1 || n2 < 1 || d < 1 || d > 46340) return NAN;
    size_t dd = (size_t)d * d;
    /* m1, m2 [d]; c1, c2, h, t, m, r [d, d]; scratch for sqrtm: 2 d^2 + d */
    double *buf = malloc(sizeof(double) * (2 * (size_t)d + 6 * dd + 2 * dd + d));
    if (!buf) return NAN;
    double *m1 = buf, *m2 = m1 + d, *c1 = m2 + d, *c2 = c1 + dd, *h = c2 + dd, *t = h + dd,
           *m = t + dd, *r = m + dd, *tmp = r + dd;
    moments(f1, n1, d, m1, c1);
    moments(f2, n2, d, m2, c2);
    sqrtm(c1, d, h, tmp); /* h = S1^1/2 */
    matmul(h, c2, d, t);  /* t = h S2 */
    matmul(t, h, d, m);   /* m = h S2 h, symmetric PSD up to rounding */
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++)
            m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
    sqrtm(m, d, r, tmp);
    double fd = 0;
    for (int i = 0; i < d; i++)
        fd += (m1[i] - m2[i]) * (m1[i] - m2[i]) + c1[i * d + i] + c2[i * d + i] - 2 * r[i * d + i];
    free(buf);
    return fd;
}
