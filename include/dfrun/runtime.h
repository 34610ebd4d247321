/* Threads and library-wide settings. */
#ifndef DFRUN_RUNTIME_H
#define DFRUN_RUNTIME_H

/* Threads used by the kernels. n <= 0: the DFRUN_THREADS environment
 * variable if set, else the cores this process may run on. Returns the count
 * in force. */
int df_set_threads(int n);
int df_get_threads(void);
/* Which OpenBLAS flavour is loaded: "openmp", "pthreads" or "serial". */
const char *df_blas_flavour(void);
/* "model name; avx512f avx512_bf16 amx_tile amx_bf16" (the flags present),
 * read at run time from /proc/cpuinfo: figures are quoted with it. */
const char *df_cpu_summary(void);
/* 1 when the CPU has AVX512_BF16 (vdpbf16ps), read at run time. */
int df_cpu_has_bf16(void);
/* How precision bf16 runs here: "vdpbf16ps", "emulated" (no AVX512_BF16:
 * the same rounded operands, float32 FMAs) or "no effect" (a build without
 * the AVX-512 Winograd kernels, whose products it applies to). */
const char *df_bf16_mode(void);
/* Monotonic wall-clock seconds (for timing; the origin is arbitrary). */
double df_seconds(void);

#endif
