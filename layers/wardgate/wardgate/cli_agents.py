"""``wardgate agents ls|register|disable|scim-token`` and ``wardgate revoke``: registry and kill switch.

Every change is written to the audit trail (``wardgate recordings ls --connection _admin``)
with the operator (``--by``, default ``$USER``) and the reason.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any


def _admin() -> Any:
    from wardgate import audit
    from wardgate.admin import AgentAdmin
    from wardgate.config import Settings
    from wardgate.runtime import agent_registry

    settings = Settings.from_env()
    return AgentAdmin(agent_registry(settings), audit.from_settings(settings))


def _actor(args: argparse.Namespace) -> dict[str, Any]:
    by = args.by
    if not by:
        try:
            by = getpass.getuser()
        except (KeyError, OSError):
            by = "unknown"
    return {"subject": by, "kind": "cli"}


def _local_issuer() -> str | None:
    from wardgate.dev.oidc import ISSUER_PATH
    from wardgate.dev.stack import read_state

    state = read_state()
    return f"{state['url'].rstrip('/')}{ISSUER_PATH}" if state else None


def _when(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M") if epoch else "-"


def cmd_ls(args: argparse.Namespace) -> int:
    from wardgate.cli import target

    target(args)
    admin = _admin()
    agents = admin.registry.agents(args.owner)
    revoked = {s.owner for s in admin.registry.revoked_owners()}
    if args.json:
        print(json.dumps([{**a.to_dict(), "owner_revoked": a.owner in revoked} for a in agents], indent=2))
        return 0
    print(
        f"{'SUBJECT':<24} {'OWNER':<28} {'STATUS':<16} {'LAST USED':<16} {'EXPIRES':<16} CONNECTIONS  ISSUER"
    )
    for a in agents:
        status = a.status if a.owner not in revoked or a.status == "revoked" else f"{a.status}/owner-revoked"
        flags = f"  [{', '.join(a.flags)}]" if a.flags else ""
        print(
            f"{a.subject[:24]:<24} {a.owner[:28]:<28} {status:<16} {_when(a.last_used):<16} "
            f"{_when(a.expires_at):<16} {','.join(a.connections):<12} {a.issuer}{flags}"
        )
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from wardgate.admin import agent_from_request
    from wardgate.cli import target

    target(args)
    issuer = args.issuer or (None if args.stack else _local_issuer())
    if not issuer:
        print("wardgate: --issuer is required (the token issuer of the agent)", file=sys.stderr)
        return 2
    try:
        agent = agent_from_request(
            {
                "issuer": issuer,
                "subject": args.subject,
                "owner": args.owner,
                "purpose": args.purpose,
                "connections": args.connection,
                "owner_groups": args.owner_group or [],
                "expires_in_days": args.expires_in_days,
            }
        )
    except (KeyError, ValueError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    stored = _admin().register(agent, _actor(args))
    print(json.dumps(stored.to_dict()))
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from wardgate.cli import target

    target(args)
    result = _admin().disable(args.subject, args.issuer, args.reason, _actor(args))
    print(json.dumps(result.to_dict()))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from wardgate.cli import target

    target(args)
    result = _admin().revoke(
        _actor(args), args.reason, owner=args.owner, subject=args.subject, issuer=args.issuer
    )
    print(json.dumps(result.to_dict()))
    if args.owner and not result.agents and not result.already:
        print(
            f"note: {args.owner} owns no registered agent; the revocation stands and refuses any token "
            "naming them as owner, and any registration for them",
            file=sys.stderr,
        )
    return 0


def cmd_scim_token(args: argparse.Namespace) -> int:
    from wardgate.cli import target
    from wardgate.config import Settings
    from wardgate.scim import SecretToken

    target(args)
    token = SecretToken(Settings.from_env().scim_token_secret)()
    if not token:
        print("wardgate: no SCIM token secret configured (SCIM_TOKEN_SECRET)", file=sys.stderr)
        return 1
    print(token)
    return 0


def add_commands(sub: Any, with_stack: Any) -> None:
    agents = sub.add_parser("agents", help="the agent registry: list, register, disable")
    asub = agents.add_subparsers(dest="action", required=True)

    ls = asub.add_parser("ls", help="every agent with its owner, status, last use and expiry")
    ls.add_argument("--owner")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_ls)

    register = asub.add_parser("register", help="register an agent identity and its human owner")
    register.add_argument("--subject", required=True, help="the token's sub (or client_id)")
    register.add_argument("--issuer", help="the token issuer (default: the local dev issuer)")
    register.add_argument("--owner", required=True, help="the human responsible (IdP user name / e-mail)")
    register.add_argument("--owner-group", action="append", help="a group of the owner; repeat for several")
    register.add_argument("--purpose", required=True)
    register.add_argument(
        "--connection", action="append", required=True, help="a connection it may use ('*': all); repeat"
    )
    register.add_argument("--expires-in-days", type=float, help="registration lifetime (default: none)")
    register.set_defaults(func=cmd_register)

    disable = asub.add_parser("disable", help="stop one agent (reversible only by registering it anew)")
    disable.add_argument("--subject", required=True)
    disable.add_argument("--issuer")
    disable.add_argument("--reason", required=True)
    disable.set_defaults(func=cmd_disable)

    scim = asub.add_parser("scim-token", help="print the bearer token of the SCIM endpoint")
    scim.set_defaults(func=cmd_scim_token)

    revoke = sub.add_parser("revoke", help="kill switch: revoke a subject, or an owner and all their agents")
    who = revoke.add_mutually_exclusive_group(required=True)
    who.add_argument("--owner", help="revoke this owner and every agent they own")
    who.add_argument("--subject", help="revoke this agent identity")
    revoke.add_argument("--issuer", help="with --subject: the issuer (needed if several use the subject)")
    revoke.add_argument("--reason", required=True, help="why (recorded)")
    revoke.set_defaults(func=cmd_revoke)

    for command in (register, disable, revoke):
        command.add_argument("--by", help="who does this (recorded; default: $USER)")
    for command in (ls, register, disable, scim, revoke):
        with_stack(command)
