"""``postdicom-flows check``: run the ``check_account`` flow on an account and print its table.

The account is a saved block (``--credentials NAME``) or, for a first try
before saving one, ``--web-address`` and ``--username`` with the password
read from ``POSTDICOM_PASSWORD`` or asked for (never a command-line argument:
those end up in shell history and process lists). Exit status: 0 when every
call worked and every answer was understood, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from blocks import PostDicomCredentials

PASSWORD_ENV = "POSTDICOM_PASSWORD"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="postdicom-flows check",
        description="A read-only tour of a PostDICOM account: every kind of call once, and how its answers "
        "were read. Writes nothing unless --write-test is given.",
    )
    account = p.add_argument_group("account")
    account.add_argument("--credentials", metavar="NAME", help="name of a saved PostDicomCredentials block")
    account.add_argument("--web-address", help="the account's WebAddress (instead of --credentials)")
    account.add_argument("--username", help="the account e-mail (with --web-address; password from "
                         f"${PASSWORD_ENV} or asked)")
    account.add_argument("--dialect", choices=("postdicom", "standard"), default="postdicom",
                         help="with --web-address: 'standard' for PS3.18 servers (DICOMweb calls only)")
    p.add_argument("--write-test", action="store_true",
                   help="also create a folder and a synthetic order, assign, share, then delete the order")
    p.add_argument("--json", metavar="FILE", type=Path, help="save the report as JSON (no patient data)")
    p.add_argument("--days", type=int, default=30, help="order-list window in days (default 30)")
    p.add_argument("--page-size", type=int, default=5, help="QIDO page size (default 5)")
    p.add_argument("--institution", help="institution UUID for the write test")
    p.add_argument("--user", help="user UUID for the write test's assignment")
    p.add_argument("--group", help="user-group UUID for the write test's assignment")
    return p


def _credentials(args: argparse.Namespace, p: argparse.ArgumentParser) -> PostDicomCredentials:
    from blocks import PostDicomCredentials

    if args.credentials and args.web_address:
        p.error("give --credentials or --web-address, not both")
    if args.credentials:
        loaded = PostDicomCredentials.load(args.credentials)  # synchronous here: no event loop is running
        assert isinstance(loaded, PostDicomCredentials)
        return loaded
    if not (args.web_address and args.username):
        p.error("give --credentials NAME, or --web-address and --username")
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"Password for {args.username}: ")
    return PostDicomCredentials(username=args.username, password=SecretStr(password), web_address=args.web_address,
                                dialect=args.dialect)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from flows.check import MAX_DAYS, MAX_PAGE_SIZE, check_account

    if not 1 <= args.days <= MAX_DAYS:
        p.error(f"--days must be between 1 and {MAX_DAYS}, not {args.days}")
    if not 1 <= args.page_size <= MAX_PAGE_SIZE:
        p.error(f"--page-size must be between 1 and {MAX_PAGE_SIZE}, not {args.page_size}")
    credentials = _credentials(args, p)

    report = check_account(
        credentials,
        write_test=args.write_test,
        days=args.days,
        page_size=args.page_size,
        institution_uuid=args.institution,
        assigned_user_uuid=args.user,
        assigned_user_group_uuid=args.group,
    )
    print(report.table())
    if args.json:
        args.json.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        print(f"\nReport saved to {args.json} (no patient data: send it to the team if something was not understood)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
