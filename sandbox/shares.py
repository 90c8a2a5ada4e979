"""Share links: creation for the three share endpoints, and the pages a recipient opens.

Hardened the way trusted viewers do it (field notes): the token is
``secrets.token_urlsafe(32)`` (256 bits) and only its SHA-256 is stored; a
share password is kept as PBKDF2-HMAC-SHA256 with a salt and compared in
constant time; the expiry date is enforced on every page and download;
password attempts are limited per link; an unlocked browser session is an
HMAC-signed cookie scoped to the link's path. Pages are plain HTML (no
JavaScript) so any browser, or a form POST from a test, can use them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import html
import io
import secrets
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from sandbox import model
from sandbox.config import Settings
from sandbox.errors import ApiError
from sandbox.multipart import CHUNK
from sandbox.store import Store, WriteTransaction, new_uuid, now_text
from sandbox.workers import in_worker

COOKIE = "sbx_share_session"
PAGE = Template(resources.files("sandbox").joinpath("templates/page.html").read_text(encoding="utf-8"))
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def hash_password(password: str, rounds: int) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, rounds)
    return f"pbkdf2_sha256${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    _, rounds, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(rounds))
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def create_share(tx: WriteTransaction, settings: Settings, account: model.Account, root_url: str, *,
                 order_uuids: list[str], folder_uuid: str | None, expire_date: dt.date | None,
                 password: str | None, downloadable: bool, title: str | None = None,
                 description: str | None = None) -> dict[str, Any]:
    """Record a share and answer the shape of docs/api-answers.md (the token is shown only here)."""
    if expire_date is not None and expire_date < settings.today():
        raise ApiError(400, f"ExpireDate {expire_date.isoformat()} is in the past")
    for order_uuid in order_uuids:
        model.order(tx.conn, account, order_uuid)
    token = secrets.token_urlsafe(32)
    share_uuid = new_uuid()
    password_hash = hash_password(password, settings.pbkdf2_rounds) if password else None
    tx.conn.execute(
        "INSERT INTO shares (uuid, account_uuid, token_sha256, kind, folder_uuid, title, description, "
        "expire_date, password_hash, downloadable, created_datetime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (share_uuid, account.uuid, token_hash(token), "folder" if folder_uuid else "orders", folder_uuid,
         title, description, expire_date.isoformat() if expire_date else None, password_hash,
         int(downloadable), now_text()))
    tx.conn.executemany("INSERT INTO share_orders VALUES (?, ?, ?)",
                        [(share_uuid, o, n) for n, o in enumerate(order_uuids)])
    return {
        "ShareUuid": share_uuid,
        "ShareUrl": f"{root_url}/share/{token}",
        "ExpireDate": expire_date.isoformat() if expire_date else None,
        "PasswordProtected": password_hash is not None,
        "Downloadable": downloadable,
        "PatientOrderUuidList": order_uuids if not folder_uuid else model.folder_tree_orders(tx.conn, folder_uuid),
        "FolderUuid": folder_uuid,
        "ShareTitle": title,
        "ShareDescription": description,
    }


# ---------------------------------------------------------------- pages

def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(PAGE.substitute(title=html.escape(title), body=body), status_code=status,
                        headers={**SECURITY_HEADERS, **(headers or {})})


def _notice(title: str, text: str, status: int, headers: dict[str, str] | None = None) -> HTMLResponse:
    return _page(title, f'<p class="notice error">{html.escape(text)}</p>', status, headers)


class _Share:
    """A share row looked up by token, with the checks every share page needs."""

    def __init__(self, row: sqlite3.Row, token: str):
        self.row = row
        self.token = token

    @property
    def protected(self) -> bool:
        return self.row["password_hash"] is not None

    def expired(self, settings: Settings) -> bool:
        return self.row["expire_date"] is not None and settings.today().isoformat() > self.row["expire_date"]

    def session_value(self, expires: int, secret: bytes) -> str:
        message = f"{self.row['uuid']}.{expires}.{self.row['password_hash']}".encode()
        return f"{expires}.{hmac.new(secret, message, hashlib.sha256).hexdigest()}"

    def unlocked(self, request: Request, secret: bytes) -> bool:
        if not self.protected:
            return True
        value = request.cookies.get(COOKIE, "")
        expires, _, _ = value.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(value, self.session_value(int(expires), secret))


def _lookup(store: Store, token: str) -> _Share | None:
    row = store.read().execute("SELECT * FROM shares WHERE token_sha256 = ?", (token_hash(token),)).fetchone()
    return _Share(row, token) if row is not None else None


def _shared_orders(conn: sqlite3.Connection, share: _Share) -> list[sqlite3.Row]:
    if share.row["kind"] == "folder":
        uuids = model.folder_tree_orders(conn, share.row["folder_uuid"])
    else:
        uuids = [r["order_uuid"] for r in conn.execute(
            "SELECT order_uuid FROM share_orders WHERE share_uuid = ? ORDER BY position", (share.row["uuid"],))]
    rows = [conn.execute("SELECT * FROM orders WHERE uuid = ?", (u,)).fetchone() for u in uuids]
    return [r for r in rows if r is not None]


async def _checked(request: Request) -> _Share | Response:
    """The share of the request's token, or the page that says why there is none (not found, expired)."""
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    share = await in_worker(request, _lookup, store, request.path_params["token"])
    if share is None:
        return _notice("Link not found", "This share link does not exist or was removed.", 404)
    if share.expired(settings):
        return _notice("Link expired", f"This share link expired on {share.row['expire_date']}.", 410)
    return share


def _password_form(message: str = "", status: int = 200) -> HTMLResponse:
    notice = f'<p class="notice error">{html.escape(message)}</p>' if message else ""
    body = (f"{notice}<p>These studies are protected by a password.</p>"
            '<form method="post"><label>Password <input type="password" name="password" '
            'autocomplete="current-password" required autofocus></label> <button type="submit">Open</button></form>')
    return _page("Protected share", body, status)


def _display_name(pn: str) -> str:
    return " ".join(part for part in pn.split("=")[0].split("^") if part)


async def share_page(request: Request) -> Response:
    """GET /share/{token}: the password form, or the list of shared studies."""
    share = await _checked(request)
    if isinstance(share, Response):
        return share
    if not share.unlocked(request, request.app.state.store.secret):
        return _password_form()
    store: Store = request.app.state.store

    def rows() -> list[dict[str, Any]]:
        conn = store.read()
        return [model.order_summary(conn, r) for r in _shared_orders(conn, share)]

    orders = await in_worker(request, rows)
    title = share.row["title"] or "Shared studies"
    lines = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(_display_name(o["PatientName"])), html.escape(o["PatientId"]),
            html.escape(o["StudyDate"] or ""), html.escape(", ".join(o["ModalityList"])),
            html.escape(o["StudyDescription"]), o["NumberOfInstances"])
        for o in orders)
    body = ""
    if share.row["description"]:
        body += f"<p>{html.escape(share.row['description'])}</p>"
    if share.row["expire_date"]:
        body += f"<p><small>Available until {html.escape(share.row['expire_date'])}.</small></p>"
    body += ("<table><thead><tr><th>Patient</th><th>Patient ID</th><th>Study date</th><th>Modality</th>"
             f"<th>Description</th><th>Images</th></tr></thead><tbody>{lines}</tbody></table>")
    if not orders:
        body += '<p class="notice">No studies are shared here (any more).</p>'
    elif share.row["downloadable"]:
        body += f'<p><a class="button" href="/share/{html.escape(share.token)}/download">Download (ZIP)</a></p>'
    return _page(title, body)


def _reserve_attempt(store: Store, settings: Settings, share_uuid: str, now: float) -> tuple[int, float]:
    """Count a password attempt BEFORE it is checked: ``(its number, 0)``, or ``(0, locked_until)``.

    Counting and the lock-out test happen in one write transaction, so guesses
    sent at the same time each take their own number: at most
    ``share_max_attempts`` of them are ever checked, and the one that takes the
    last number locks the link at once (a right password among them unlocks
    it again). A lock-out that has run out starts the count afresh.
    """
    with store.write() as tx:
        failed, locked_until = tx.conn.execute("SELECT failed_attempts, locked_until FROM shares WHERE uuid = ?",
                                               (share_uuid,)).fetchone()
        if locked_until > now:
            return 0, locked_until
        attempt = (0 if locked_until else failed) + 1
        locked = now + settings.share_lockout_seconds if attempt >= settings.share_max_attempts else 0
        tx.conn.execute("UPDATE shares SET failed_attempts = ?, locked_until = ? WHERE uuid = ?",
                        (attempt, locked, share_uuid))
        return attempt, 0


def _clear_attempts(store: Store, share_uuid: str) -> None:
    with store.write() as tx:
        tx.conn.execute("UPDATE shares SET failed_attempts = 0, locked_until = 0 WHERE uuid = ?", (share_uuid,))


async def share_unlock(request: Request) -> Response:
    """POST /share/{token}: check the password (limited attempts), then set the session cookie."""
    share = await _checked(request)
    if isinstance(share, Response):
        return share
    if not share.protected:
        return RedirectResponse(f"/share/{share.token}", status_code=303, headers=SECURITY_HEADERS)
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    form = await request.form(max_files=0, max_fields=10)
    password = form.get("password", "")
    if not isinstance(password, str):
        password = ""
    now = time.time()
    attempt, locked_until = await in_worker(request, _reserve_attempt, store, settings, share.row["uuid"], now)
    if not attempt:
        wait = int(locked_until - now) + 1
        return _notice("Too many attempts", f"Too many wrong passwords. Try again in {wait} seconds.", 429,
                       {"Retry-After": str(wait)})
    correct = await in_worker(request, check_password, password, share.row["password_hash"])
    if correct:
        await in_worker(request, _clear_attempts, store, share.row["uuid"])
    elif attempt >= settings.share_max_attempts:
        return _notice("Too many attempts", "Too many wrong passwords; this link is locked for a while.", 429,
                       {"Retry-After": str(settings.share_lockout_seconds)})
    else:
        return _password_form("Wrong password.", 403)
    lifetime = settings.share_session_seconds
    if share.row["expire_date"]:
        end_of_expiry = dt.datetime.combine(dt.date.fromisoformat(share.row["expire_date"]), dt.time.max,
                                            tzinfo=dt.timezone.utc)
        lifetime = max(1, min(lifetime, int((end_of_expiry - settings.now()).total_seconds()) + 1))
    expires = int(now) + lifetime
    response = RedirectResponse(f"/share/{share.token}", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, share.session_value(expires, store.secret), max_age=lifetime,
                        path=f"/share/{share.token}", httponly=True, samesite="strict")
    return response


class _Pipe(io.RawIOBase):
    """A write-only sink zipfile writes into; drained after every block (zip streamed, never whole)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _zip_chunks(entries: list[tuple[str, Path]]) -> Iterator[bytes]:
    pipe = _Pipe()
    archive = zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    for arcname, path in entries:
        info = zipfile.ZipInfo.from_file(path, arcname)
        info.compress_type = zipfile.ZIP_STORED
        with path.open("rb") as source, archive.open(info, "w", force_zip64=info.file_size > 2**31) as target:
            while block := source.read(CHUNK):
                target.write(block)
                yield pipe.drain()
        yield pipe.drain()
    archive.close()
    yield pipe.drain()


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:64] or "study"


async def share_download(request: Request) -> Response:
    """GET /share/{token}/download: a zip of the shared studies' files, only when downloadable."""
    share = await _checked(request)
    if isinstance(share, Response):
        return share
    store: Store = request.app.state.store
    if not share.unlocked(request, store.secret):
        return RedirectResponse(f"/share/{share.token}", status_code=303, headers=SECURITY_HEADERS)
    if not share.row["downloadable"]:
        return _notice("Download not allowed", "The sender did not allow downloading these studies.", 403)

    def entries() -> list[tuple[str, Path]]:
        conn = store.read()
        out = []
        for order_row in _shared_orders(conn, share):
            folder = _safe_name(f"{order_row['patient_id']}_{order_row['study_date'] or order_row['uuid'][:8]}")
            for inst in conn.execute("SELECT series_instance_uid, sop_instance_uid, path FROM instances "
                                     "WHERE order_uuid = ? ORDER BY id", (order_row["uuid"],)):
                out.append((f"{folder}/{inst['series_instance_uid']}/{inst['sop_instance_uid']}.dcm",
                            store.files_dir / inst["path"]))
        return out

    files = await in_worker(request, entries)
    if not files:
        return _notice("Nothing to download", "No images are stored for these studies.", 404)
    return StreamingResponse(_zip_chunks(files), media_type="application/zip",
                             headers={**SECURITY_HEADERS,
                                      "Content-Disposition": 'attachment; filename="shared-studies.zip"'})

