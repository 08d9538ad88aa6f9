/* Built with -fstack-protector-all (see build.rs): every function gets a
 * canary between its locals and the saved registers. */
#include <stddef.h>

/* Bytes written from the start of the 16-byte buffer: the buffer, the
 * alignment slot and the canary above it, and no further, so the saved frame
 * pointer and the return address survive and an unwinder still walks
 * through this frame.  The layout is checked in tests/crashers/README.md. */
static volatile size_t coroner_overrun = 32;

/* Overflows a local buffer; the epilogue's canary check calls
 * __stack_chk_fail, glibc prints "*** stack smashing detected ***:
 * terminated" and aborts: SIGABRT (SI_TKILL) with this function on the stack
 * under __stack_chk_fail. */
__attribute__((noinline)) void crash_stack_chk(void) {
    char buf[16];
    char *p = buf;
    size_t n = coroner_overrun;
    /* Hide where `p` points so the compiler cannot reason about the bounds. */
    __asm__ volatile("" : "+r"(p));
    for (size_t i = 0; i < n; i++) {
        p[i] = 'A';
    }
    __asm__ volatile("" : : "r"(p) : "memory");
}
