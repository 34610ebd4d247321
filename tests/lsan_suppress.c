/* Compiled into every test program (an INTERFACE source of dfrun_testlib):
 * cairo keeps fontconfig's caches for the life of the process (loss and
 * scatter plots), which LeakSanitizer would report at exit. Not a leak of
 * ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n";
}
