/* coroner.h: the C API of libcoroner.so (crate coroner-preload).
 *
 * Loaded with LD_PRELOAD (or linked), the library installs the crash runtime
 * from a constructor: on a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGABRT, SIGTRAP, SIGSYS) it launches the configured AeDebug debugger
 * against the live process, else writes the LocalDumps dump, then lets the
 * signal end the process as it would have. Configuration: the coroner TOML
 * files, or $CORONER_CONFIG. It also interposes every libc call that sets a
 * signal disposition (sigaction, signal, bsd_signal, ssignal, sysv_signal,
 * sigset, sigignore, siginterrupt) and pthread_create (see the crate docs).
 */
#ifndef CORONER_H
#define CORONER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Installs the runtime (the constructor already did; idempotent).
 * Returns 0 on success, -1 on failure (a message went to stderr). */
int coroner_install(void);

/* DebugBreak: a breakpoint instruction (int3 on x86; SIGTRAP elsewhere).
 * An attached debugger stops at it as at any breakpoint and can continue
 * after it; otherwise the registered debugger is launched (reason
 * "debug-break"), and without one the process dies by SIGTRAP. */
void coroner_debug_break(void);

/* Debugger.Launch: starts the registered debugger now, with a JIT block
 * for the calling thread. Returns 1 once it attached and signalled its
 * event (or one is attached already), 0 if none is configured, the program
 * is excluded, the user declined, or it exited or timed out. */
int coroner_launch_debugger(void);

/* FailFast: writes msg (may be NULL) to stderr, skips the program's own
 * SIGABRT handler, runs the debugger and dump steps (reason "fail-fast"),
 * and ends the process by SIGABRT. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noreturn))
#endif
void coroner_fail_fast(const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* CORONER_H */
