"""Run a command and write its own peak RSS and wait status: `python -S child_peak.py RESULT COMMAND...`.

A child's ru_maxrss is at least its parent's RSS when it was started: at exec Linux copies the parent's
high-water mark into the child (exec_mmap -> setmax_mm_hiwater_rss), so a benchmark that holds a large corpus
would be charged for it in every child. This launcher is a bare interpreter (-S: no site, ~9 MiB), so the
command it starts inherits ~9 MiB at most: the floor of what is reported, under any Python child's own peak. It
writes "STATUS MAXRSS_KIB" to RESULT; stdout, stderr and the environment pass through to the command.
"""

import os
import signal
import sys


def main() -> None:
    result, executable, *arguments = sys.argv[1:]
    # Ctrl-C reaches the whole process group: the command handles it, and this process stays to report its end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid = os.posix_spawnp(executable, [executable, *arguments], os.environ, setsigdef=(signal.SIGINT,))
    _, status, usage = os.wait4(pid, 0)
    with open(result, "w") as handle:
        handle.write(f"{status} {usage.ru_maxrss}\n")


if __name__ == "__main__":
    main()
