#!/usr/bin/env python3
"""Run a command as a child subreaper and report wall, CPU (user+sys of the
command and every descendant, orphans included: procdump never waits for its
gdb child) and the peak RSS of the largest single process.

usage: measure.py CMD ARGS...   prints one JSON line on stdout
"""
import ctypes, json, os, sys, time

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")

t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
cpu = 0.0
peak_kib = 0
rc = None
while True:
    try:
        wpid, status, ru = os.wait4(-1, 0)
    except ChildProcessError:
        break
    cpu += ru.ru_utime + ru.ru_stime
    peak_kib = max(peak_kib, ru.ru_maxrss)
    if wpid == pid:
        rc = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mib": peak_kib / 1024, "rc": rc}))
