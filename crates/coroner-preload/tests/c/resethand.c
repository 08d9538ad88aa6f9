/* resethand.c: one-shot handlers (SA_RESETHAND) on SIGSEGV. The handler
 * runs for the first fault only, returns, and the faulting write repeats:
 * the kernel has reset the disposition to SIG_DFL, so the second fault
 * kills the process (under the runtime: after the postmortem step). The
 * preload tests run it with and without libcoroner.so and expect the same
 * lines.
 *
 *   resethand MODE    MODE is how the handler is installed:
 *     sysv            sysv_signal(SIGSEGV, h)
 *     __sysv          __sysv_signal(SIGSEGV, h) (signal() under -std=c99)
 *     resethand       sigaction SA_SIGINFO|SA_RESETHAND, mask {SIGUSR1}
 *     nodefer         sigaction SA_SIGINFO|SA_RESETHAND|SA_NODEFER
 *     rearm           sysv_signal, and the handler installs itself again
 *                     for its first two runs (the System V idiom)
 *
 * Lines: `installed query=h flags=<RESETHAND,NODEFER,SIGINFO,RESTART bits>`,
 * one `hit N segv_blocked=B usr1_blocked=B query=Q` per handler run (Q:
 * what sigaction reports inside the handler), `faulting` before the write.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern __sighandler_t __sysv_signal(int, __sighandler_t);

static char *volatile target; /* NULL: the write faults */
static volatile sig_atomic_t hits;
static int rearm;

static void put(const char *s)
{
    (void)!write(1, s, strlen(s));
}

static void put_digit(int d)
{
    char c = (char)('0' + d);
    (void)!write(1, &c, 1);
}

static int blocked(int sig)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

static void handler(int sig);

static const char *query_name(void)
{
    struct sigaction old;
    memset(&old, 0, sizeof old);
    sigaction(SIGSEGV, NULL, &old);
    if (old.sa_handler == SIG_DFL)
        return "dfl";
    if (old.sa_handler == handler)
        return "handler";
    return "other";
}

static void report(void)
{
    hits++;
    put("hit ");
    put_digit(hits);
    put(" segv_blocked=");
    put_digit(blocked(SIGSEGV));
    put(" usr1_blocked=");
    put_digit(blocked(SIGUSR1));
    put(" query=");
    put(query_name());
    put("\n");
    if (rearm && hits < 3)
        sysv_signal(SIGSEGV, handler);
}

static void handler(int sig)
{
    (void)sig;
    report();
}

static void info_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (si->si_signo != SIGSEGV || si->si_addr != NULL)
        put("bad siginfo\n");
    report();
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    struct sigaction act;
    memset(&act, 0, sizeof act);
    if (!strcmp(mode, "sysv") || !strcmp(mode, "rearm")) {
        rearm = !strcmp(mode, "rearm");
        sysv_signal(SIGSEGV, handler);
    } else if (!strcmp(mode, "__sysv")) {
        __sysv_signal(SIGSEGV, handler);
    } else if (!strcmp(mode, "resethand") || !strcmp(mode, "nodefer")) {
        act.sa_sigaction = info_handler;
        act.sa_flags = SA_SIGINFO | SA_RESETHAND;
        if (!strcmp(mode, "nodefer"))
            act.sa_flags |= SA_NODEFER;
        sigaddset(&act.sa_mask, SIGUSR1);
        sigaction(SIGSEGV, &act, NULL);
    } else {
        return 2;
    }
    struct sigaction now;
    memset(&now, 0, sizeof now);
    sigaction(SIGSEGV, NULL, &now);
    printf("installed query=%s flags=%s%s%s%s\n",
           now.sa_handler == handler || now.sa_sigaction == info_handler ? "handler" : "other",
           now.sa_flags & SA_RESETHAND ? "R" : "-", now.sa_flags & SA_NODEFER ? "N" : "-",
           now.sa_flags & SA_SIGINFO ? "S" : "-", now.sa_flags & SA_RESTART ? "A" : "-");
    printf("faulting\n");
    *target = 1;
    printf("survived\n");
    return 70;
}
