"""Joining Ray: the environment Ray reads when it is first imported, then a local instance or a cluster.

This module imports Ray only inside :func:`connect`: Ray reads ``RAY_AUTH_MODE``
and Tune's settings when first imported, so :func:`set_ray_environment` must run
before anything imports it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from trainables.core.usage import UsageError, quiet_libraries


def ray_token_available() -> bool:
    """Whether a Ray authentication token can be found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or bool(path and Path(path).is_file()) or (
        Path.home() / ".ray" / "auth_token").is_file()


def set_ray_environment(address: str | None) -> None:
    """Environment variables Ray and Tune read at import: call before anything imports Ray."""
    # Ray 2.60 clusters started with `ray start --head` require a token, but a client only sends
    # one in token mode; a token-mode client also works with clusters that have auth disabled.
    if address and "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic trial table, with our columns
    # Tune saves its experiment state after trials report (short trials report often); its warning that saving is
    # frequent says nothing a user can act on (trials' own checkpoints follow --checkpoint-interval).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def connect(address: str | None) -> None:
    """Start a private local Ray instance, or join the cluster at ``address``; UsageError in one line if refused.

    Called from :class:`RayStart`'s thread, which keeps the command's SIGTERM handling.
    """
    import ray  # Ray reads its environment when first imported: set_ray_environment ran before

    quiet_libraries()  # again: importing Ray and MLflow set their loggers up anew
    try:
        # "local": a private instance, even when a `ray start` cluster runs on this machine.
        context = ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
                           log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        hint = " (token authentication? see README, 'Running on a cluster')" if "auth" in str(err).lower() else ""
        raise UsageError(f"cannot connect to the Ray cluster at {address}: {str(err).splitlines()[0]}{hint}") from None
    if not address:  # our own instance: nothing of it may outlive this process, even when it is killed
        session = Path(context.address_info["session_dir"]).name
        subprocess.Popen([sys.executable, "-m", "trainables.study.run.watchdog", str(os.getpid()), session],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)


class _SignalAction:
    """A signal's action as the operating system holds it (an opaque ``struct sigaction``), to be put back later.

    Python can set a handler only from the main thread; this reads and restores the OS-level action from any thread,
    where libc has ``sigaction`` (``ok`` is False elsewhere).
    """

    def __init__(self, signum: int):
        self.signum, self.ok = signum, False
        try:
            self._libc = ctypes.CDLL(None, use_errno=True)
            self._action = ctypes.create_string_buffer(1024)  # larger than any platform's struct sigaction
            self.ok = self._libc.sigaction(signum, None, self._action) == 0
        except (OSError, AttributeError):
            pass

    def restore(self) -> bool:
        return self.ok and self._libc.sigaction(self.signum, self._action, None) == 0


class RayStart:
    """Ray starting (a private instance, or joining the cluster at ``address``) in a thread of its own.

    Ray's start is mostly waiting for its processes to come up (5-7 s on a 2-core machine): the driver imports,
    probes the space and opens the study's stores meanwhile, then :meth:`wait` s. The thread lives until
    :meth:`close`: Ray starts its processes with a parent-death signal, which Linux sends when the *thread* that
    started them ends.

    SIGTERM stays the command's: Ray's driver installs SIGTERM handlers that end the process at once, skipping
    Tune's clean stop (its Python one only from the main thread; its core worker's, which aborts, at the
    operating-system level from any thread); the thread puts the command's action back as soon as Ray is up, and
    :meth:`wait` does so again where it could not.
    """

    def __init__(self, address: str | None):
        self.address = address
        self._error: BaseException | None = None
        self._sigterm_restored = False
        self._up, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sigterm = _SignalAction(signal.SIGTERM)
        try:
            connect(self.address)
        except BaseException as err:  # raised again in the thread that waits
            self._error = err
        self._sigterm_restored = sigterm.restore()
        self._up.set()
        self._release.wait()

    def wait(self) -> None:
        """Block until Ray is up; raise what its start raised (UsageError when a cluster refused)."""
        self._up.wait()
        if not self._sigterm_restored and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))  # Python sets its own action anew
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Shut Ray down (once a start still under way is through), then let the thread end."""
        self._up.wait()
        disconnect()
        self._release.set()
        self._thread.join()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """UsageError within ``timeout_s`` when nothing listens at a Ray cluster's ``host:port`` (Ray would retry for
    minutes)."""
    if "://" in address:  # a Ray client address: Ray checks it itself
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {getattr(err, 'strerror', None) or err}") from None


def disconnect() -> None:
    """Shut down the Ray instance this process started or joined, if any."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
