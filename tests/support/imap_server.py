"""A throwaway Dovecot IMAP server for the test session, from Debian's binaries.

It listens on 127.0.0.1 only: plain IMAP (allowed on loopback) and IMAPS with a
certificate from a CA made for the session. Every user name logs in with the same
throwaway password (a ``static`` passdb: Dovecot re-reads a passwd-file at most once a
second, too slow for a user per test), so a test gets an empty mailbox by naming a new
user. When the tests run as root, the mail files belong to ``nobody`` (Dovecot refuses
uid 0 for mail) and the login processes run as the ``dovenull``/``dovecot`` users that
the package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port

PASSWORD = "imap-test-pw-7f3c"


class ImapUnavailable(RuntimeError):
    pass


def find_dovecot() -> Path:
    for candidate in (
        os.environ.get("TENURE_DOVECOT"),
        shutil.which("dovecot"),
        "/usr/sbin/dovecot",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ImapUnavailable(
        "Dovecot not found: run `make server-binaries` (installs Debian's dovecot-imapd) "
        "or set TENURE_DOVECOT"
    )


def _accounts() -> tuple[str, str, str, str]:
    """(login user, internal user, mail uid, mail gid) for the server's processes."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid()).pw_name
        return me, me, str(os.getuid()), str(os.getgid())
    try:
        pwd.getpwnam("dovenull")
        pwd.getpwnam("dovecot")
        nobody = pwd.getpwnam("nobody")
    except KeyError as exc:
        raise ImapUnavailable(f"running as root needs Debian's dovecot users: {exc}") from None
    return "dovenull", "dovecot", str(nobody.pw_uid), str(nobody.pw_gid)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ImapUnavailable(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _make_certificates(root: Path) -> None:
    """A CA and a server certificate for 127.0.0.1/localhost (EC keys: instant)."""
    if shutil.which("openssl") is None:
        raise ImapUnavailable("the openssl command is needed to make the test certificates")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=Tenure test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=root)  # fmt: skip
    _openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=root)  # fmt: skip
    (root / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
             cwd=root)  # fmt: skip


@dataclass
class ImapServer:
    root: Path
    port: int
    tls_port: int
    process: subprocess.Popen[bytes]
    started_in: float
    version: str
    users: list[str] = field(default_factory=list)

    @property
    def cafile(self) -> Path:
        return self.root / "ca.crt"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def new_user(self) -> str:
        """A user never seen before, hence with an empty mailbox."""
        user = f"u{uuid.uuid4().hex[:12]}"
        self.users.append(user)
        return user

    def url(self, user: str, *, tls: bool = False, password: str = PASSWORD) -> str:
        if tls:
            return f"imaps://{user}:{password}@127.0.0.1:{self.tls_port}/?cafile={self.cafile}"
        return f"imap://{user}:{password}@127.0.0.1:{self.port}/"

    @classmethod
    def start(cls) -> ImapServer:
        binary = find_dovecot()
        started = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix="tenure-imap-"))
        os.chmod(root, 0o755)  # the mail and login users must reach their directories
        login_user, internal_user, uid, gid = _accounts()
        mail = root / "mail"
        mail.mkdir()
        os.chown(mail, int(uid), int(gid))
        _make_certificates(root)
        port, tls_port = free_port(), free_port()
        (root / "dovecot.conf").write_text(f"""
instance_name = tenure-{root.name}
base_dir = {root}/run
state_dir = {root}/state
protocols = imap
listen = 127.0.0.1
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/server.crt
ssl_key = <{root}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
mail_location = maildir:{mail}/%u
# no auth penalty: a test's wrong password must not slow the next test's login
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
""")
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        process = subprocess.Popen(
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(root / "dovecot.stderr").open("wb"),
        )
        server = cls(root, port, tls_port, process, 0.0, version.stdout.strip())
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        server.started_in = time.monotonic() - started
        return server

    def _wait_until_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ImapUnavailable(f"dovecot exited at start: {self._tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ImapUnavailable(f"dovecot did not accept connections: {self._tail()}")
            time.sleep(0.05)

    def _tail(self) -> str:
        text = ""
        for name in ("dovecot.stderr", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")[-1500:]
        return text.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
