"""Who an MQTT client is and how it talks to the broker: username/password and TLS, for every entry point.

Why: a broker that lets anyone in lets anyone drive the robot and forge what it reports. The node and the
agent log in (``username`` + password) and may use TLS (``mqtts://host:8883/name``, a CA file, optionally
a client certificate); the broker's ACL (``configs/mosquitto/acl``) then decides who may publish what.

The password never needs to be on a command line: :class:`MqttAuth` takes it from ``password_file``, else
from the ``AGENTKIT_MQTT_PASSWORD`` environment variable; ``auth=None`` everywhere means
:meth:`MqttAuth.from_env` (``AGENTKIT_MQTT_USERNAME``, ``AGENTKIT_MQTT_PASSWORD[_FILE]``,
``AGENTKIT_MQTT_TLS_CA``/``_CERT``/``_KEY``; all unset: anonymous, plain TCP).

Example:
    >>> from agentkit.transport.mqtt.wire import parse_spec
    >>> opts = MqttAuth(username="operator", password="s3cret").client_options(parse_spec("mqtt://127.0.0.1/r1"))
    >>> opts["username"], opts["tls_context"] is None
    ('operator', True)
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, SecretStr, StringConstraints, model_validator

from agentkit.errors import ConfigError
from agentkit.transport.mqtt.wire import BrokerSpec

log = logging.getLogger(__name__)

ENV_USERNAME = "AGENTKIT_MQTT_USERNAME"
ENV_PASSWORD = "AGENTKIT_MQTT_PASSWORD"
ENV_PASSWORD_FILE = "AGENTKIT_MQTT_PASSWORD_FILE"
ENV_TLS_CA = "AGENTKIT_MQTT_TLS_CA"
ENV_TLS_CERT = "AGENTKIT_MQTT_TLS_CERT"
ENV_TLS_KEY = "AGENTKIT_MQTT_TLS_KEY"

Username = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,256}$")]


class MqttAuth(BaseModel):
    """Credentials and TLS files of one MQTT client; a config model, so errors name the field.

    Attributes:
        username: the broker login (for a robot node: its robot name, which the shipped ACL relies on).
        password: the password itself (API use; dumps as ``**********``). Prefer ``password_file``.
        password_file: a file whose first line is the password.
        tls_ca: CA certificate(s) to verify the broker with (``mqtts://`` only; default: the system's).
        tls_cert, tls_key: a client certificate and its key, for brokers that require one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Username | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MqttAuth:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give 'password' or 'password_file', not both")
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("'tls_key' needs 'tls_cert'")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MqttAuth:
        """Built from the ``AGENTKIT_MQTT_*`` variables (all unset: anonymous, no client files)."""
        e = os.environ if env is None else env

        def path(name: str) -> Path | None:
            return Path(e[name]) if e.get(name) else None

        return cls(
            username=e.get(ENV_USERNAME) or None,
            password_file=path(ENV_PASSWORD_FILE),
            tls_ca=path(ENV_TLS_CA),
            tls_cert=path(ENV_TLS_CERT),
            tls_key=path(ENV_TLS_KEY),
        )

    def resolve_password(self, env: Mapping[str, str] | None = None) -> str | None:
        """The password: ``password``, else the first line of ``password_file``, else ``$AGENTKIT_MQTT_PASSWORD``.

        Raises:
            ConfigError: the password file cannot be read or is empty.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"--password-file {self.password_file}: cannot read it ({e})") from None
            if not lines or not lines[0]:
                raise ConfigError(f"--password-file {self.password_file}: the first line is empty")
            return lines[0]
        value = (os.environ if env is None else env).get(ENV_PASSWORD)
        return value or None

    def client_options(self, spec: BrokerSpec) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client``: ``username``, ``password``, ``tls_context``, ``socket_options``.

        ``socket_options`` turns Nagle's algorithm off: paho leaves it on, and a QoS 1 message (a result, an
        action) sent right after a QoS 0 frame otherwise waits for the delayed ACK, ~40 ms on Linux.

        Raises:
            ConfigError: TLS files with a plain ``mqtt://`` address, a password without a username,
                an unreadable password file, or a CA/certificate/key that does not load.
        """
        tls_files = [p for p in (self.tls_ca, self.tls_cert, self.tls_key) if p is not None]
        if tls_files and not spec.tls:
            raise ConfigError(
                f"--tls-ca/--tls-cert/--tls-key need an mqtts:// address (got {spec.url}); "
                "mqtts://host:8883/name connects with TLS"
            )
        password = self.resolve_password() if self.username else None
        if self.username is None and (self.password is not None or self.password_file is not None):
            raise ConfigError("an MQTT password needs a username (--username)")
        context: ssl.SSLContext | None = None
        if spec.tls:
            try:
                context = ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)
                if self.tls_cert is not None:
                    context.load_cert_chain(str(self.tls_cert), str(self.tls_key) if self.tls_key else None)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"MQTT TLS files ({', '.join(map(str, tls_files)) or 'system CAs'}): {e}") from None
        elif password is not None and not _is_loopback(spec.host):
            log.warning("MQTT: sending the password for %r to %s in clear text; use mqtts://", self.username, spec.host)
        return {"username": self.username, "password": password, "tls_context": context, "socket_options": NODELAY}


NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def resolve_auth(auth: MqttAuth | None) -> MqttAuth:
    """``auth``, or :meth:`MqttAuth.from_env` when ``None``."""
    return auth if auth is not None else MqttAuth.from_env()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_refused(e: BaseException) -> bool:
    """Whether an aiomqtt error is the broker refusing the login (bad username/password, not authorized)."""
    rc = getattr(e, "rc", None)
    value = getattr(rc, "value", rc)
    return type(e).__name__ == "MqttConnectError" and value in (4, 5, 134, 135)
