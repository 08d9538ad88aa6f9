/* triggers.c: the explicit triggers of the C API (coroner.h), linked with
 * -lcoroner, one per argument. Every line goes to stdout, unbuffered.
 *
 *   launch       Debugger.Launch: prints `launched=<coroner_launch_debugger()>`,
 *                then `after launch`, exits 0.
 *   fail-fast    installs its own SIGABRT and SIGSEGV handlers (each would
 *                print `own handler <sig>` and exit 3), prints `crashing`,
 *                then coroner_fail_fast(MESSAGE): the handlers never run.
 *   debug-break  prints `breaking`, coroner_debug_break(), then
 *                `after break`, exits 0 (reached only when a debugger
 *                continued past the breakpoint).
 *   launch-break launch, then debug-break.
 */
#include "coroner.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MESSAGE "triggers: giving up on purpose"

static void own_handler(int sig)
{
    printf("own handler %d\n", sig);
    _exit(3);
}

static void launch(void)
{
    int r = coroner_launch_debugger();
    printf("launched=%d\n", r);
    printf("after launch\n");
}

static void debug_break(void)
{
    printf("breaking\n");
    coroner_debug_break();
    printf("after break\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "launch")) {
        launch();
    } else if (!strcmp(mode, "fail-fast")) {
        struct sigaction act;
        memset(&act, 0, sizeof act);
        act.sa_handler = own_handler;
        sigaction(SIGABRT, &act, NULL);
        sigaction(SIGSEGV, &act, NULL);
        printf("crashing\n");
        coroner_fail_fast(MESSAGE);
    } else if (!strcmp(mode, "debug-break")) {
        debug_break();
    } else if (!strcmp(mode, "launch-break")) {
        launch();
        debug_break();
    } else {
        fprintf(stderr, "usage: triggers launch|fail-fast|debug-break|launch-break\n");
        return 2;
    }
    return 0;
}
