"""Start a private Mosquitto broker on loopback (tests, demos, ``agentkit eval fetch --mqtt``).

Why: the MQTT bridge must be exercised against the real broker, but tests and demos must neither need
a system service nor collide with one: this runs the ``mosquitto`` binary directly with a generated
config, on 127.0.0.1 and a free port, and can stop and restart it on the same port (to test reconnection).

It can also run the way a deployment should: from the shipped ``configs/mosquitto/mosquitto.conf``
(``config=``; its listener, file paths and logging are replaced by private ones, every other setting is
kept), with users (``users=``, hashed into a password file by ``mosquitto_passwd``), an ACL (``acl=``,
e.g. the shipped ``configs/mosquitto/acl``) and a TLS listener (``tls=`` CA, certificate, key).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from agentkit.errors import ConfigError

# settings of a given config that the private broker replaces with its own
_REPLACED = {
    "listener",
    "port",
    "bind_address",
    "bind_interface",
    "socket_domain",
    "password_file",
    "acl_file",
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "tls_version",
    "log_dest",
    "persistence",
    "persistence_location",
    "persistence_file",
    "pid_file",
    "include_dir",
    "user",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shipped_config_dir() -> Path:
    """``configs/mosquitto/`` of this package: ``mosquitto.conf``, ``acl`` and how to make the password file."""
    return Path(str(files("agentkit.configs"))) / "mosquitto"


def _find_binary(name: str = "mosquitto") -> str:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/usr/local/sbin/{name}"):
        if cand and Path(cand).exists():
            return cand
    raise ConfigError(f"{name} not found: apt-get install mosquitto")


@dataclass(frozen=True)
class TlsFiles:
    """The broker side of TLS: the CA that signed the server certificate, the certificate, its key."""

    ca: Path
    cert: Path
    key: Path


class MosquittoBroker:
    """A Mosquitto process on ``127.0.0.1:port``. Use as a context manager.

    Args:
        port: the port (default: a free one).
        config: a mosquitto.conf to start from (e.g. ``shipped_config_dir() / "mosquitto.conf"``).
        users: ``{username: password}``; turns anonymous access off.
        acl: an ACL file to enforce.
        tls: serve TLS only (``url`` is then ``mqtts://``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        config: Path | None = None,
        users: Mapping[str, str] | None = None,
        acl: Path | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.binary = _find_binary()
        self.port = port or free_port()
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="agentkit-mosquitto-"))
        self.dir.chmod(0o755)  # mosquitto started as root reads its files as user mosquitto
        self.log = self.dir / "mosquitto.log"
        self.log.touch(0o666)  # writable after mosquitto drops root privileges
        self.log.chmod(0o666)
        lines = [f"listener {self.port} 127.0.0.1"]
        if tls is not None:  # copies mosquitto can read once it has dropped root privileges
            ca = self._private_copy(tls.ca, "ca.pem")
            cert, key = self._private_copy(tls.cert, "cert.pem"), self._private_copy(tls.key, "key.pem")
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        kept: list[str] = []
        if config is not None:
            for line in Path(config).read_text().splitlines():
                word = line.split(maxsplit=1)[0] if line.strip() else ""
                if word and not word.startswith("#") and word not in _REPLACED:
                    kept.append(line.strip())
        if not any(line.split()[0] == "allow_anonymous" for line in kept):
            kept.append(f"allow_anonymous {'false' if users is not None else 'true'}")
        if not any(line.split()[0] == "set_tcp_nodelay" for line in kept):
            kept.append("set_tcp_nodelay true")  # a small result must not wait behind a frame for an ACK
        if users is not None:
            passwd = self.dir / "passwd"
            tool = _find_binary("mosquitto_passwd")
            for i, (user, password) in enumerate(users.items()):
                args = [tool, *(["-c"] if i == 0 else []), "-b", str(passwd), user, password]
                subprocess.run(args, check=True, capture_output=True, timeout=30)
            passwd.chmod(0o644)
            kept.append(f"password_file {passwd}")
        if acl is not None:
            copy = self.dir / "acl"
            shutil.copyfile(acl, copy)
            copy.chmod(0o644)
            kept.append(f"acl_file {copy}")
        self.config = self.dir / "mosquitto.conf"
        self.config.write_text("\n".join([*lines, *kept, "persistence false", f"log_dest file {self.log}", ""]))
        self.proc: subprocess.Popen[bytes] | None = None

    def _private_copy(self, src: Path, name: str) -> Path:
        dst = self.dir / name
        shutil.copyfile(src, dst)
        dst.chmod(0o600)
        if os.geteuid() == 0:  # mosquitto started as root reads its files as user mosquitto
            import pwd

            try:
                entry = pwd.getpwnam("mosquitto")
            except KeyError:
                pass
            else:
                os.chown(dst, entry.pw_uid, entry.pw_gid)
        return dst

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> MosquittoBroker:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
                tail = self.log.read_text(errors="replace")[-500:] if self.log.exists() else ""
                raise ConfigError(f"mosquitto exited with {self.proc.returncode}: {err or tail or '(no output)'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ConfigError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
