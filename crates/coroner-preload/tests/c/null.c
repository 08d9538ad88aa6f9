/* null.c: prints `crashing null pid=<pid> tid=<tid> addr=0x0`, then writes
 * through a null pointer (SIGSEGV / SEGV_MAPERR at 0). Built both 64-bit
 * and 32-bit (-m32) by the i386 test. */
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *volatile target; /* NULL */

int main(void)
{
    printf("crashing null pid=%d tid=%ld addr=0x0\n", (int)getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
    *target = 1;
    return 70;
}
