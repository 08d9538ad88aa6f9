/* threads.c: a thread ends with pthread_exit and another is cancelled, each
 * running its cleanup handler; both unwind through the runtime's
 * pthread_create wrapper (glibc's forced unwinding). Then a null write.
 * Prints the same lines with and without the runtime. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static char *volatile target; /* NULL */

static void cleanup(void *what)
{
    printf("cleanup %s\n", (const char *)what);
    fflush(stdout);
}

static void *exiter(void *arg)
{
    pthread_cleanup_push(cleanup, "exit");
    pthread_exit((void *)7);
    pthread_cleanup_pop(0);
    return arg;
}

static void *sleeper(void *arg)
{
    pthread_cleanup_push(cleanup, "cancel");
    for (;;)
        pause();
    pthread_cleanup_pop(0);
    return arg;
}

int main(void)
{
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, exiter, NULL);
    pthread_join(t, &ret);
    printf("exited %ld\n", (long)ret);
    pthread_create(&t, NULL, sleeper, NULL);
    pthread_cancel(t);
    pthread_join(t, &ret);
    printf("cancelled %d\n", ret == PTHREAD_CANCELED);
    fflush(stdout);
    *target = 1;
    return 70;
}
