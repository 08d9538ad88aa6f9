/* C crash kinds of the coroner crasher: functions that die in libc. */
#undef NDEBUG
#include <assert.h>

/* `assert` on a value the compiler cannot see: glibc's __assert_fail prints
 * "crasher: ...: crash_assert: Assertion `...' failed." and calls abort(), so
 * the process dies by SIGABRT (si_code SI_TKILL) with this function on the
 * stack under __assert_fail. */
__attribute__((noinline)) void crash_assert(void) {
    volatile int coroner_assertion = 0;
    assert(coroner_assertion && "coroner crasher: deliberate assertion");
    /* Keeps the call above from being the tail call: this frame stays. */
    __asm__ volatile("" ::: "memory");
}
