"""Runs INSIDE the sandbox (stdlib only): read {code, inputs} on stdin, call main(**inputs).

The result travels on the original stdout as one JSON line; the user's own prints are sent to
stderr so they can never be mistaken for the result.
"""

import json
import os
import signal
import sys
import traceback


def _emit(channel, payload):
    channel.write(json.dumps(payload))
    channel.flush()


def main():
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # A write past RLIMIT_FSIZE then raises OSError(EFBIG) instead of killing silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    request = json.loads(sys.stdin.read())
    root = os.getpid()
    me = os.getpid()
    namespace = {"__name__": "__loom_code__"}
    try:
        exec(compile(request["code"], "<code>", "exec"), namespace)
        fn = namespace.get("main")
        if not callable(fn):
            raise TypeError("the code must define main(**inputs)")
        result = fn(**request["inputs"])
        if os.getpid() != root:
            os._exit(0)  # a child the code forked: only the first process reports
        if not isinstance(result, dict):
            raise TypeError(f"main() must return a dict, not {type(result).__name__}")
        if os.getpid() != me:
            os._exit(0)
        _emit(channel, {"ok": True, "result": json.loads(json.dumps(result))})
    except BaseException:
        if os.getpid() != me:
            os._exit(1)  # a process the code forked: only the main one reports
        _report(channel, sys.exc_info()[1])


def _report(channel, exc):
    if isinstance(exc, MemoryError):
        _emit(channel, {"ok": False, "limit": "memory", "message": "memory limit reached"})
    else:  # the user's error, reported, never re-raised
        limit = None
        if isinstance(exc, BlockingIOError) or (isinstance(exc, OSError) and exc.errno == 11):
            limit = "processes"
        elif isinstance(exc, OSError) and exc.errno == 27:
            limit = "file_size"
        elif isinstance(exc, OSError) and exc.errno == 28:  # the sandbox's tmpfs is full
            limit = "disk"
        _emit(channel, {"ok": False, "limit": limit, "type": type(exc).__name__, "message": str(exc)[:2000],
                        "traceback": traceback.format_exc(limit=-5)[-4000:]})


if __name__ == "__main__":
    main()
