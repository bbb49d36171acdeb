"""A throwaway PostgreSQL cluster for one test run, started and stopped by the run itself.

Debian's server binaries (package `postgresql`), a new cluster in a temporary directory,
listening on a Unix socket in that directory and on no TCP port, so nothing else on the
machine is touched and no port can clash. No system service is involved (no pg_ctlcluster,
no /var/run/postgresql). The server is stopped (immediate shutdown: nothing in it is worth
a checkpoint) and the directory deleted when the run ends, when it fails, and at exit; and
since it is started with a parent-death signal, it goes even if the test process is killed.

initdb and postgres refuse to run as root, and CI runs as root: there the cluster belongs
to the unprivileged user `nobody`, which owns only the temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "keyed_storage"  # trust authentication, reachable only through the private socket
PORT = 5432  # names the socket file (.s.PGSQL.5432) in the private directory; no TCP port is opened
START_TIMEOUT = 60  # seconds; a hang detector, not a performance expectation
UNPRIVILEGED = "nobody"


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    socket_dir: str
    port: int
    user: str
    log: Path

    def django_settings(self) -> dict[str, str]:
        return {"HOST": self.socket_dir, "PORT": str(self.port), "USER": self.user, "PASSWORD": ""}


def server_binaries() -> Path:
    """The directory holding initdb and postgres.

    $KEYED_STORAGE_PG_BIN if set; else Debian's newest /usr/lib/postgresql/<version>/bin;
    else wherever initdb is on PATH (other distributions).
    """
    if configured := os.environ.get("KEYED_STORAGE_PG_BIN"):
        candidates = [Path(configured)]
    else:
        debian = Path("/usr/lib/postgresql").glob("*/bin")
        numbered = [path for path in debian if re.fullmatch(r"\d+", path.parent.name)]
        candidates = sorted(numbered, key=lambda path: int(path.parent.name), reverse=True)
        if initdb := shutil.which("initdb"):
            candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise ClusterError(
        "PostgreSQL's server binaries (initdb, postgres) were not found in "
        f"{[str(path) for path in candidates] or '/usr/lib/postgresql/*/bin or PATH'}. Install Debian's "
        "package (`make postgres-deps`, i.e. apt-get install postgresql) or set KEYED_STORAGE_PG_BIN."
    )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running cluster for the duration of the with block; gone, with its files, afterwards."""
    binaries = server_binaries()
    owner = _owner()
    base = Path(tempfile.mkdtemp(prefix="keyed-storage-pg-", dir=_parent_directory(owner)))
    data, sockets, log = base / "data", base / "socket", base / "server.log"
    server: subprocess.Popen | None = None
    stop = None
    try:
        sockets.mkdir()
        log.touch()
        if owner is not None:
            for path in (base, sockets, log):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            [
                binaries / "initdb",
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            owner,
        )
        with open(log, "ab") as out:
            server = subprocess.Popen(
                [
                    *_dies_with_parent(),
                    binaries / "postgres",
                    "-D",
                    data,
                    "-k",
                    sockets,
                    "-p",
                    str(PORT),
                    "-c",
                    "listen_addresses=",  # the Unix socket only
                    # A throwaway cluster: durability buys nothing and costs time.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_environment(),
                **_as_user(owner),
            )
        stop = functools.partial(_stop, server)
        atexit.register(stop)
        _wait_until_ready(server, data, log)
        yield Cluster(socket_dir=str(sockets), port=PORT, user=SUPERUSER, log=log)
    finally:
        if stop is not None:
            stop()
            atexit.unregister(stop)
        shutil.rmtree(base, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None (this one) unless this process is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        raise ClusterError(
            f"Running as root, and PostgreSQL refuses to: the throwaway cluster runs as "
            f"{UNPRIVILEGED!r}, which this machine does not have."
        ) from None


def _parent_directory(owner: pwd.struct_passwd | None) -> str:
    """The usual temporary directory, unless the cluster's user could not reach it (a private
    TMPDIR, as the peer run makes, is root's alone); then /tmp."""
    parent = tempfile.gettempdir()
    if owner is None or _reachable_by_anyone(parent):
        return parent
    return "/tmp"


def _reachable_by_anyone(path: str) -> bool:
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        if path == os.path.dirname(path):
            return True
        path = os.path.dirname(path)


def _as_user(owner: pwd.struct_passwd | None) -> dict:
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _dies_with_parent() -> list[str]:
    # setpriv (util-linux) sets a parent-death signal and execs postgres, which stays our
    # child: if this process dies without cleaning up, the kernel sends the postmaster
    # SIGQUIT, PostgreSQL's immediate shutdown. Where setpriv is missing, atexit remains.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig=QUIT", "--"] if setpriv else []


def _clean_environment() -> dict[str, str]:
    # Nothing from the caller's PG* variables or locale reaches the server.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def _run(command: list, owner: pwd.struct_passwd | None) -> None:
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_clean_environment(),
        **_as_user(owner),
    )
    if result.returncode:
        raise ClusterError(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")


def _wait_until_ready(server: subprocess.Popen, data: Path, log: Path) -> None:
    # As `pg_ctl start -w` does: postmaster.pid's last line says "ready" once connections
    # are accepted.
    pid_file = data / "postmaster.pid"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ClusterError(f"postgres exited with {server.returncode}:\n{log.read_text()}")
        with contextlib.suppress(FileNotFoundError):
            lines = pid_file.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.05)
    _stop(server)
    raise ClusterError(f"postgres was not ready after {START_TIMEOUT} s:\n{log.read_text()}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGQUIT)  # immediate shutdown; the backends go with it
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
