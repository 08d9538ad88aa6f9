/* sigset.c: the System V disposition calls (sigset, sigignore, sighold,
 * sigrelse, siginterrupt) as a program uses them. glibc implements them on
 * its internal __sigaction, so the runtime must interpose each one to know
 * the program's wishes. Prints one key=value per line; the preload tests run
 * it with and without libcoroner.so and expect the same lines:
 *
 *   sigset_prev        what sigset(SIGSEGV, on_segv) returned (dfl)
 *   segv_query         what sigaction then reports (on_segv)
 *   kernel_is_handler  the kernel holds on_segv itself (1)
 *   hits               faults on a PROT_NONE page on_segv recovered (1)
 *   restart_off/on     SA_RESTART after siginterrupt(SIGSEGV, 1) / (.., 0)
 *   sigignore, abrt_query, abrt_survived   sigignore(SIGABRT) and a raise
 *   bus_prev, bus_query, bus_blocked       sighold, then sigset: SIG_HOLD
 *                                          is returned and SIGBUS unblocked
 *   bus_hold_prev, bus_hold_again          sigset(SIGBUS, SIG_HOLD) twice
 *   segv_prev, segv_query_dfl              sigset(SIGSEGV, SIG_DFL)
 *   raising                                then raise(SIGSEGV): the process
 *                                          dies by it (under the runtime,
 *                                          after the postmortem step)
 */
#define _GNU_SOURCE
#include <signal.h>
/* These calls are deprecated; testing them is the point. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *page;
static volatile sig_atomic_t hits;

static void on_segv(int sig)
{
    (void)sig;
    hits++;
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static void on_bus(int sig)
{
    (void)sig;
}

static const char *name(sighandler_t h)
{
    if (h == SIG_ERR)
        return "err";
    if (h == SIG_DFL)
        return "dfl";
    if (h == SIG_IGN)
        return "ign";
    if (h == SIG_HOLD)
        return "hold";
    if (h == on_segv)
        return "on_segv";
    if (h == on_bus)
        return "on_bus";
    return "other";
}

static struct sigaction query(int sig)
{
    struct sigaction old;
    memset(&old, 0, sizeof old);
    sigaction(sig, NULL, &old);
    return old;
}

/* The kernel's own record (raw rt_sigaction, x86-64 layout). */
static unsigned long kernel_handler(int sig)
{
    struct {
        unsigned long handler, flags, restorer, mask;
    } k;
    memset(&k, 0, sizeof k);
    syscall(SYS_rt_sigaction, sig, NULL, &k, 8);
    return k.handler;
}

static int blocked(int sig)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 71;

    printf("sigset_prev=%s\n", name(sigset(SIGSEGV, on_segv)));
    printf("segv_query=%s\n", name(query(SIGSEGV).sa_handler));
    printf("kernel_is_handler=%d\n", kernel_handler(SIGSEGV) == (unsigned long)on_segv);
    page[0] = 1;
    printf("hits=%d\n", (int)hits);

    siginterrupt(SIGSEGV, 1);
    printf("restart_off=%d\n", (query(SIGSEGV).sa_flags & SA_RESTART) != 0);
    siginterrupt(SIGSEGV, 0);
    printf("restart_on=%d\n", (query(SIGSEGV).sa_flags & SA_RESTART) != 0);

    printf("sigignore=%d\n", sigignore(SIGABRT));
    printf("abrt_query=%s\n", name(query(SIGABRT).sa_handler));
    raise(SIGABRT);
    printf("abrt_survived=1\n");

    sighold(SIGBUS);
    printf("bus_prev=%s\n", name(sigset(SIGBUS, on_bus)));
    printf("bus_query=%s\n", name(query(SIGBUS).sa_handler));
    printf("bus_blocked=%d\n", blocked(SIGBUS));
    printf("bus_hold_prev=%s\n", name(sigset(SIGBUS, SIG_HOLD)));
    printf("bus_hold_again=%s\n", name(sigset(SIGBUS, SIG_HOLD)));
    printf("bus_blocked=%d\n", blocked(SIGBUS));
    sigrelse(SIGBUS);

    printf("segv_prev=%s\n", name(sigset(SIGSEGV, SIG_DFL)));
    printf("segv_query_dfl=%s\n", name(query(SIGSEGV).sa_handler));
    printf("raising\n");
    raise(SIGSEGV);
    printf("survived\n");
    return 70;
}
