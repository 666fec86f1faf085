"""``wardgate ssh login`` and ``wardgate ssh-config``: the agent's side of the SSH gateway.

``ssh login`` sends the agent's public key and OIDC token to ``POST /ssh/certificate`` and writes
the certificate where OpenSSH looks for it (``<key>-cert.pub``), plus what ``ssh-config`` needs
later without a token (``<key>-wardgate.json``: the gateway's host key and address). It makes an
ed25519 key first when there is none. ``ssh-config`` writes the ``Host`` block that makes the stock
``ssh``, ``scp``, ``sftp``, ``rsync -e ssh`` and ``git`` go through the gateway: the SSH user name
is the connection's name, the gateway's host key is pinned, and nothing is trusted on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_KEY = "~/.ssh/wardgate_ed25519"
TOKEN_ENV = "WARDGATE_TOKEN"
REQUEST_TIMEOUT_S = 30.0
HOST_ALIAS = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
GATEWAY_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")  # a DNS name or an IP address


class LoginError(Exception):
    """What went wrong, for the agent's terminal."""


def key_paths(key: str) -> tuple[Path, Path, Path, Path]:
    """The private key, its public half, its certificate and the saved login details."""
    private = Path(key).expanduser().absolute()
    return (
        private,
        private.with_name(private.name + ".pub"),
        private.with_name(private.name + "-cert.pub"),
        private.with_name(private.name + "-wardgate.json"),
    )


def _write_private(path: Path, data: bytes) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(data)


def ensure_key(key: str) -> str:
    """The public key line of ``key``, after making an ed25519 key when there is none."""
    import asyncssh

    private, public, _, _ = key_paths(key)
    if not private.exists():
        private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        made = asyncssh.generate_private_key("ssh-ed25519", comment="wardgate agent key")
        _write_private(private, made.export_private_key())
        public.write_bytes(made.export_public_key())
        print(f"made a new ed25519 key: {private}", file=sys.stderr)
    if public.exists():
        return public.read_text().strip()
    try:  # no .pub beside it: derive it (an encrypted key needs its .pub)
        return asyncssh.read_private_key(private).export_public_key().decode().strip()
    except (asyncssh.KeyImportError, ValueError, OSError) as exc:
        raise LoginError(f"cannot read the public half of {private} ({exc}); put it in {public}") from None


def read_token(token_file: str | None) -> str:
    if token_file:
        try:
            token = Path(token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise LoginError(f"cannot read the token file: {exc}") from None
        where = token_file
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        where = f"${TOKEN_ENV}"
    if not token:
        raise LoginError(f"no token: set {TOKEN_ENV} or pass --token-file (an OIDC token of the agent)")
    if any(c.isspace() for c in token):
        raise LoginError(f"the token in {where} holds whitespace: one token expected")
    return token


def gateway_url(url: str | None, stack: str | None) -> str:
    """--url, else the deployed stack's ApiUrl output, else the running ``wardgate dev``."""
    if url:
        return url.rstrip("/")
    if stack:
        import boto3

        outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
        for output in outputs:
            if output["OutputKey"] == "ApiUrl":
                return str(output["OutputValue"]).rstrip("/")
        raise LoginError(f"stack {stack!r} has no ApiUrl output")
    from wardgate.dev.stack import read_state

    state = read_state()
    if state is None:
        raise LoginError("no gateway: pass --url or --stack (no wardgate dev is running here)")
    return str(state["url"]).rstrip("/")


def request_certificate(url: str, token: str, public_key: str) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(
            f"{url}/ssh/certificate",
            json={"public_key": public_key},
            headers={"authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:300]
        raise LoginError(f"the gateway refused the certificate ({response.status_code}): {message}")
    if not isinstance(body, dict) or not str(body.get("certificate", "")).split()[:1]:
        raise LoginError("the gateway's answer holds no certificate")
    return body


def check_certificate(body: dict[str, Any], public_key: str) -> None:
    """What the gateway sent is a certificate for our own key (nothing else is written)."""
    import asyncssh

    try:
        certificate = asyncssh.import_certificate(str(body["certificate"]))
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise LoginError(f"the gateway's certificate does not parse: {exc}") from None
    if certificate.key.public_data != asyncssh.import_public_key(public_key).public_data:
        raise LoginError("the gateway's certificate is for another key")
    for line in (str(body.get("host_key") or ""),):
        try:
            asyncssh.import_public_key(line)
        except (asyncssh.KeyImportError, ValueError):
            raise LoginError("the gateway's answer holds no valid host key") from None


def cmd_ssh_login(args: argparse.Namespace) -> int:
    import time

    try:
        token = read_token(args.token_file)
        url = gateway_url(args.url, args.stack)
        public_key = ensure_key(args.key)
        body = request_certificate(url, token, public_key)
        check_certificate(body, public_key)
    except LoginError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 1
    _, _, cert_file, details_file = key_paths(args.key)
    cert_file.write_text(str(body["certificate"]).strip() + "\n")
    details = {name: body.get(name) for name in ("host_key", "known_hosts", "ssh_host", "ssh_port")}
    details.update(
        url=url,
        principal=body.get("principal"),
        valid_before=body.get("valid_before"),
        key_id=body.get("key_id"),
    )
    details_file.write_text(json.dumps(details, indent=2) + "\n")
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(body["valid_before"])))
    print(f"certificate for {body.get('principal')} written to {cert_file} (valid until {until})")
    if not body.get("ssh_host"):
        print(
            "the gateway did not say its SSH address: give wardgate ssh-config --gateway-host",
            file=sys.stderr,
        )
    return 0


def host_block(
    alias: str, connection: str, host: str, port: int, private: Path, cert_file: Path, known_hosts: Path
) -> str:
    lines = [
        f"Host {alias}",
        f"    HostName {host}",
        f"    Port {port}",
        f"    User {connection}",
        f'    IdentityFile "{private}"',
        f'    CertificateFile "{cert_file}"',
        "    IdentitiesOnly yes",
        f'    UserKnownHostsFile "{known_hosts}"',
        "    StrictHostKeyChecking yes",
        "    UpdateHostKeys no",
        "    ForwardAgent no",
        "    ForwardX11 no",
        "    PreferredAuthentications publickey",
    ]
    return "\n".join(lines) + "\n"


def cmd_ssh_config(args: argparse.Namespace) -> int:
    import asyncssh

    from wardgate.connections import NAME_PATTERN

    private, _, cert_file, details_file = key_paths(args.key)
    alias = args.host_alias or args.connection
    problems = []
    if not NAME_PATTERN.match(args.connection):
        problems.append(f"connection {args.connection!r} must match {NAME_PATTERN.pattern}")
    if not HOST_ALIAS.match(alias):
        problems.append(f"host alias {alias!r} must match {HOST_ALIAS.pattern}")
    try:
        details = json.loads(details_file.read_text())
    except (OSError, ValueError):
        details = {}
        if not args.host_key:
            problems.append(f"no {details_file}: run wardgate ssh login --key {args.key} first")
    host = args.gateway_host or details.get("ssh_host")
    port = args.gateway_port or details.get("ssh_port") or 22
    host_key = args.host_key or details.get("host_key") or ""
    if not host:
        problems.append("the gateway's SSH address is unknown: pass --gateway-host (and --gateway-port)")
    elif not GATEWAY_HOST.match(str(host)):
        problems.append(f"gateway host {host!r} is not a host name or address")
    if not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"gateway port {port!r} is not a port")
    try:
        key = asyncssh.import_public_key(host_key)
    except (asyncssh.KeyImportError, ValueError):
        problems.append("no valid gateway host key (from ssh login, or --host-key)")
    if problems:
        for problem in problems:
            print(f"wardgate: {problem}", file=sys.stderr)
        return 2
    key_line = " ".join(key.export_public_key().decode().split()[:2])
    known_hosts = private.with_name(private.name + "-known_hosts")
    name = host if port == 22 else f"[{host}]:{port}"
    known_hosts.write_text(f"{name} {key_line}\n")
    block = host_block(alias, args.connection, str(host), int(port), private, cert_file, known_hosts)
    if args.output:
        Path(args.output).expanduser().write_text(block)
        print(f"wrote {args.output}: ssh {alias} <command> (Include it from ~/.ssh/config)", file=sys.stderr)
    else:
        sys.stdout.write(block)
    return 0


def add_commands(sub: Any) -> None:
    ssh = sub.add_parser("ssh", help="SSH certificates for the SSH gateway")
    ssh_sub = ssh.add_subparsers(dest="ssh_action", required=True)
    login = ssh_sub.add_parser("login", help="exchange the agent's token for a short-lived SSH certificate")
    login.add_argument(
        "--key", default=DEFAULT_KEY, help=f"private key (default {DEFAULT_KEY}; made if missing)"
    )
    where = login.add_mutually_exclusive_group()
    where.add_argument("--url", help="the gateway's HTTP API base URL")
    where.add_argument("--stack", help="read the URL from this deployed stack's ApiUrl output")
    login.add_argument("--token-file", help=f"file holding the agent's OIDC token (default: ${TOKEN_ENV})")
    login.set_defaults(func=cmd_ssh_login)

    config = sub.add_parser("ssh-config", help="print or write the ssh Host block for a connection")
    config.add_argument(
        "--connection", required=True, help="the connection (the SSH user name at the gateway)"
    )
    config.add_argument("--host-alias", help="the Host name to type after ssh (default: the connection)")
    config.add_argument("-o", "--output", help="write the block to this file (default: standard output)")
    config.add_argument("--key", default=DEFAULT_KEY, help=f"the key ssh login used (default {DEFAULT_KEY})")
    config.add_argument("--gateway-host", help="the SSH gateway's address (default: what ssh login was told)")
    config.add_argument(
        "--gateway-port", type=int, help="the SSH gateway's port (default: from ssh login, or 22)"
    )
    config.add_argument("--host-key", help="the gateway's host key line (default: what ssh login was told)")
    config.set_defaults(func=cmd_ssh_config)
