/* Compiled into every test program (an INTERFACE source of dfrun_testlib):
 * cairo keeps fontconfig's caches for the life of the process (loss and
 * scatter plots), which LeakSanitizer would report at exit. Open MPI (and
 * the libraries it loads: PMIx, hwloc, libevent, its MCA components) keeps
 * allocations from MPI_Init to exit, as does OpenBLAS's initialisation
 * when MPI is loaded (test_mpi; CTest gives it full stacks so that these
 * match). Not leaks of ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n"
           "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libpmix.so\n"
           "leak:libhwloc.so\nleak:libevent\nleak:mca_\nleak:libopenblas\n";
}
