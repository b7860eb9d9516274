"""pytest plugin: a fresh chatd for every irctest test.

irctest starts a new server for each test when it spawns the server itself
(ngircd, InspIRCd, hybrid); in `external` mode one server serves the whole
run, so what one test leaves behind (a nick in WHOWAS, a channel's modes)
can change the next one's answer. This plugin restarts chatd before every
test, which makes the external run comparable with the peers' runs.

Environment: CHATD_BIN (the binary), CHATD_IRC_PORT, CHATD_LINE_PORT,
CHATD_EXTRA (more flags, split on spaces) and CHATD_FIRST_PID (the chatd
started for the runner's listening check, stopped here before the first
test). Used by tests/irctest/run.sh.
"""

import os
import signal
import socket
import subprocess
import time

_proc = None


def _start():
    global _proc
    _stop()
    port = os.environ["CHATD_IRC_PORT"]
    args = [
        os.environ["CHATD_BIN"],
        "--listen", "127.0.0.1:" + os.environ["CHATD_LINE_PORT"],
        "--irc-listen", "127.0.0.1:" + port,
    ] + os.environ.get("CHATD_EXTRA", "").split()
    _proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("chatd did not start listening on port " + port)


def _stop():
    global _proc
    if _proc is not None:
        _proc.terminate()
        try:
            _proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _proc.kill()
            _proc.wait()
        _proc = None


def pytest_configure(config):
    first = os.environ.get("CHATD_FIRST_PID")
    if first:
        try:
            os.kill(int(first), signal.SIGTERM)
        except ProcessLookupError:
            pass
        time.sleep(0.2)


def pytest_runtest_setup(item):
    _start()


def pytest_unconfigure(config):
    _stop()
