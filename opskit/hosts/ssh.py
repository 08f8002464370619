"""The SSH transport (paramiko): lazy connect, host keys checked, keepalive, timeouts.

Security rules (never relaxed in a default path):
- an unknown host key is refused, with its fingerprint and the command that pins it;
- a changed host key is always refused;
- commands are argv lists joined with ``shlex.join``.
"""

from __future__ import annotations

import stat as stat_mod
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from opskit.errors import HostError, OpskitError
from opskit.hosts.bounds import ALIVE_COUNT, OutputTooLarge, max_output, too_large_error
from opskit.hosts.hostkeycheck import key_policy, transport_factory
from opskit.hosts.knownhosts import (  # noqa: F401 - fingerprint & co. are re-exported
    DEFAULT_KNOWN_HOSTS,
    fingerprint,
    known_hosts_entry_name,
    known_hosts_files,
)
from opskit.hosts.liveness import Liveness, RxClock
from opskit.hosts.spec import HostSpec
from opskit.hosts.sshconnect import (  # noqa: F401 - quiet_paramiko_logs is re-exported
    connect_error,
    identity_files,
    load_identities,
    proxy_command,
    quiet_paramiko_logs,
    tcp_connect,
)
from opskit.hosts.transport import CommandResult, FileStat, command_argv, env_argv, shell_command


class SSHTransport:
    """One SSH connection to one host, opened on first use and reopened if it dropped."""

    is_local = False

    def __init__(self, spec: HostSpec):
        self.spec = spec
        self.host = spec.name
        self._ssh: Any = None
        self._sftp: Any = None
        self._jump: SSHTransport | None = None
        self._docker: Any = None
        self._lock = threading.RLock()
        self._alive: Liveness | None = None
        self._max_output: int | None = None  # the setting, read at the first command

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -------------------------------------------------------------------------
    def client(self) -> Any:
        """The connected paramiko ``SSHClient`` (connects on first use)."""
        with self._lock:
            if self._ssh is not None:
                t = self._ssh.get_transport()
                if t is not None and t.is_active():
                    return self._ssh
                self._drop()
            self._ssh = self._connect()
            return self._ssh

    def _connect(self) -> Any:
        import paramiko

        quiet_paramiko_logs()
        spec = self.spec
        spec.check_jump()
        client = paramiko.SSHClient()
        # No host-key table: paramiko hands every server key to the policy right after the
        # key exchange, before authenticating; the policy decides as OpenSSH does
        # (hostkeycheck), so an unknown, changed or revoked key never sees a login.
        client.set_missing_host_key_policy(key_policy(spec))
        pkey, other_files = load_identities(identity_files(spec))
        sock = RxClock(self.open_socket())
        try:
            client.connect(
                spec.hostname,
                port=spec.port,
                username=spec.user,
                pkey=pkey,
                key_filename=other_files or None,
                look_for_keys=not spec.identities_only,
                allow_agent=not spec.identities_only,
                timeout=spec.connect_timeout,
                banner_timeout=spec.connect_timeout,
                auth_timeout=spec.connect_timeout,
                channel_timeout=spec.connect_timeout,
                sock=sock,
                transport_factory=transport_factory(spec),
            )
        except Exception as exc:
            client.close()
            sock.close()
            raise connect_error(spec, exc) from exc
        if self._alive is not None:
            self._alive.stop()
        self._alive = Liveness(spec.name, sock, spec.keepalive, ALIVE_COUNT).start(client.get_transport())
        return client

    @property
    def dead_reason(self) -> str | None:
        """Why the last connection was given up by the liveness watch (None: it was not)."""
        return self._alive.dead if self._alive is not None else None

    def lost_why(self, exc: BaseException) -> str:
        return self.dead_reason or str(exc) or type(exc).__name__

    def open_socket(self) -> Any:
        """A TCP socket to the host, a channel through the jump host, or a ProxyCommand.

        The one route to a host: ``hostkeys.scan`` uses it too, so the key pinned is the key
        of the host this transport will talk to. A jump host it opens closes with ``close()``.
        """
        spec = self.spec
        if spec.jump is not None:
            self._jump = SSHTransport(spec.jump)
            try:
                return self._jump.client().get_transport().open_channel(
                    "direct-tcpip", (spec.hostname, spec.port), ("127.0.0.1", 0),
                    timeout=spec.connect_timeout,
                )
            except HostError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported with both names
                raise HostError(
                    spec.name, f"cannot reach {spec.hostname}:{spec.port} through jump host "
                    f"{spec.jump.name}: {exc}"
                ) from exc
        if spec.proxycommand:
            return proxy_command(spec)
        return tcp_connect(spec)

    def _drop(self) -> None:
        if self._alive is not None:
            self._alive.stop()  # its verdict (dead_reason) is kept until the next connection
        for obj in (self._docker, self._sftp, self._ssh):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    pass
        self._docker = self._sftp = self._ssh = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- commands ---------------------------------------------------------------------------
    def _open_channel(self, argv: Sequence[str], env: dict[str, str] | None) -> Any:
        command = shell_command(env_argv(argv, env))
        try:
            chan = self.client().get_transport().open_session(timeout=self.spec.connect_timeout)
            chan.exec_command(command)
        except OpskitError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise HostError(self.host, f"connection lost while starting {command!r}: {exc}") from exc
        return chan

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        argv_t = command_argv(argv)
        limit = self.spec.command_timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + limit
        chan = self._open_channel(argv_t, env)
        try:
            if self._max_output is None:
                self._max_output = max_output()
            out, err, code = _collect(chan, stdin, deadline, self._max_output)
        except TimeoutError as exc:
            send_signal(chan, "TERM")  # closing alone would leave it running
            raise HostError(
                self.host,
                f"command {shell_command(argv_t)!r} did not finish within {limit:g}s "
                "(sent SIGTERM)",
            ) from exc
        except OutputTooLarge as exc:
            send_signal(chan, "TERM")
            raise too_large_error(self.host, shell_command(argv_t), exc) from exc
        except (OSError, EOFError) as exc:
            raise HostError(
                self.host, f"connection lost during {shell_command(argv_t)!r}: {self.lost_why(exc)}"
            ) from exc
        finally:
            chan.close()
        result = CommandResult(
            self.host,
            argv_t,
            b"".join(out).decode("utf-8", "replace"),
            b"".join(err).decode("utf-8", "replace"),
            code,
            time.monotonic() - start,
        )
        return result.check() if check else result

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> _SSHProcess:
        return _SSHProcess(self._open_channel(argv, env))

    # -- files (SFTP) -----------------------------------------------------------------------
    def sftp(self) -> Any:
        with self._lock:
            client = self.client()
            if self._sftp is None:
                self._sftp = client.open_sftp()
                self._sftp.get_channel().settimeout(self.spec.command_timeout)
            return self._sftp

    def stat(self, path: str) -> FileStat | None:
        try:
            st = self.sftp().stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                return None
            raise
        return FileStat(st.st_size or 0, st.st_mode or 0, float(st.st_mtime or 0),
                        stat_mod.S_ISDIR(st.st_mode or 0))

    def listdir(self, path: str) -> list[str]:
        return sorted(self.sftp().listdir(path))

    def makedirs(self, path: str) -> None:
        self.run(["mkdir", "-p", "--", path], check=True)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        fh = self.sftp().open(path, mode.replace("b", ""))
        if "w" in mode or "a" in mode:
            fh.set_pipelined(True)
        return fh

    def rename(self, src: str, dst: str) -> None:
        self.sftp().posix_rename(src, dst)

    def remove(self, path: str) -> None:
        st = self.stat(path)
        if st is not None and st.is_dir:
            self.run(["rm", "-rf", "--", path], check=True)
        else:
            self.sftp().remove(path)

    def sha256(self, path: str) -> str:
        res = self.run(["sha256sum", "--", path]).check()
        return res.stdout.split()[0]

    def open_unix_socket(self, path: str) -> Any:
        """A channel to the unix socket ``path`` on the host, on this connection, with no
        process started there (OpenSSH ``direct-streamlocal``; raises StreamLocalRefused)."""
        from opskit.hosts.streamlocal import open_streamlocal

        return open_streamlocal(self.client().get_transport(), path, self.spec.connect_timeout)

    def docker(self) -> Any:
        with self._lock:
            if self._docker is None:
                from opskit.hosts.engine import ssh_docker_client

                self._docker = ssh_docker_client(self.host, self.client())
            return self._docker


def _collect(chan: Any, stdin: bytes | None, deadline: float, cap: int
             ) -> tuple[list[bytes], list[bytes], int]:
    """Feed stdin and gather stdout/stderr until the command exits; TimeoutError at deadline.

    Waits on the channel's exit event with a short, adaptive sleep while output flows, rather
    than waking up for every packet: a command that prints many small lines costs far less
    client CPU, and stdin is fed only as the window allows, so a large stdin never blocks
    while output piles up.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    sizes = [0, 0]
    pending = memoryview(stdin or b"")
    if not pending:
        chan.shutdown_write()
    wait = 0.002
    while True:
        moved = False
        if pending and chan.send_ready():
            sent = chan.send(bytes(pending[:65536]))
            pending, moved = pending[sent:], True
            if not pending:
                chan.shutdown_write()
        while chan.recv_ready():
            out.append(chan.recv(1 << 20))
            sizes[0] += len(out[-1])
            moved = True
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(1 << 20))
            sizes[1] += len(err[-1])
            moved = True
        if sizes[0] > cap or sizes[1] > cap:
            raise OutputTooLarge("stdout" if sizes[0] > cap else "stderr", cap)
        if chan.exit_status_ready() and (chan.eof_received or chan.closed) and not (
            chan.recv_ready() or chan.recv_stderr_ready()
        ):
            code = chan.recv_exit_status()
            if code == -1 and not chan.transport.is_active():
                raise EOFError("the SSH connection closed before the command's exit status")
            return out, err, code
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if not chan.transport.is_active():
            raise EOFError("the SSH connection closed")
        if chan.status_event.is_set():
            time.sleep(0.001)  # exit status is in, EOF/close a packet behind
        else:
            chan.status_event.wait(min(remaining, wait))
        wait = 0.002 if moved else min(wait * 2, 0.25)


def send_signal(chan: Any, name: str) -> None:
    """Ask sshd to signal the remote command (RFC 4254 6.9 "signal"; OpenSSH >= 7.9).

    Best effort: a server without support ignores it, a dead connection cannot carry it.
    """
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    if chan.closed or chan.exit_status_ready():
        return
    msg = Message()
    msg.add_byte(cMSG_CHANNEL_REQUEST)
    msg.add_int(chan.remote_chanid)
    msg.add_string("signal")
    msg.add_boolean(False)
    msg.add_string(name)
    try:
        chan.transport._send_user_message(msg)
    except (OSError, EOFError, AttributeError):
        return  # the connection is gone: so is every process it could have signalled


class _SSHProcess:
    def __init__(self, chan: Any):
        self._chan = chan
        self.stdin = chan.makefile_stdin("wb")
        self.stdout = chan.makefile("rb")
        self.stderr = chan.makefile_stderr("rb")

    def wait(self, timeout: float | None = None) -> int:
        if not self._chan.status_event.wait(timeout):
            raise TimeoutError("remote command still running")
        return self._chan.recv_exit_status()

    def kill(self) -> None:
        send_signal(self._chan, "KILL")
        self._chan.close()
