"""Contacts imported from an uploaded CSV file: the same code as ``hub contacts import``
(``crm/importer.py``), into the caller's account. Administrators only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec
from aiohttp import BodyPartReader
from aiohttp.http_exceptions import HttpProcessingError

from crm.importer import ImportRefused, run_import
from gateway.responses import ApiError
from gateway.route import Call, route
from hub.authz import Permission

ERROR_LIMIT = 1000


class ImportForm(msgspec.Struct):
    """The upload's form fields besides ``file``."""

    #: ``true``: check and count, write nothing
    dry_run: bool = False
    #: the account to import into; only the caller's own (any other is a 403)
    account_id: str | None = None


class RowError(msgspec.Struct):
    row: int
    column: str
    reason: str


class ImportOutcome(msgspec.Struct):
    import_id: str | None
    dry_run: bool
    rows: int
    created: int
    updated: int
    failed: int
    #: rows a previous, interrupted upload of the same file had committed (0: a fresh import)
    resumed_after: int
    #: the same file was imported into the account before: nothing was written again
    already_done: bool
    #: the first 1,000 row errors, by row (``failed`` counts them all)
    errors: list[RowError]


async def _field(part: BodyPartReader) -> str:
    data = await part.read(decode=False)
    if len(data) > 200:
        raise ApiError(422, "invalid_body", f"the field {part.name} is too long")
    return data.decode("utf-8", errors="replace").strip()


async def _receive(call: Call, target: Path) -> ImportForm:
    """The file into ``target`` as it arrives (never more than the body limit), the fields."""
    request = call.request
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data")
    limit = call.hub.config.max_body_bytes
    form = ImportForm()
    got_file = False
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(422, "invalid_body", "nested multipart is not supported")
            if part.name == "file" and not got_file:
                got_file = True
                size = 0
                with target.open("wb") as fh:
                    while chunk := await part.read_chunk():
                        size += len(chunk)
                        if size > limit:
                            raise ApiError(
                                413, "body_too_large", f"the file is larger than {limit} bytes"
                            )
                        fh.write(chunk)
            elif part.name == "file":
                raise ApiError(422, "invalid_body", "send one file")
            elif part.name == "dry_run":
                value = (await _field(part)).lower()
                if value not in ("true", "false", "1", "0", "on", "off"):
                    raise ApiError(422, "invalid_body", "dry_run must be true or false")
                form.dry_run = value in ("true", "1", "on")
            elif part.name == "account_id":
                form.account_id = await _field(part)
            else:
                await part.release()
    except (ValueError, LookupError, AssertionError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_multipart", "the multipart body is malformed") from exc
    if not got_file:
        raise ApiError(422, "invalid_body", "the file field is missing")
    return form


@route(
    "POST",
    "/api/v1/contact-imports",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Import contacts from a CSV file (multipart field `file`; optional `dry_run`)",
    tag="crm",
    reply=ImportOutcome,
    upload=True,
    form=ImportForm,
    errors=(413,),
)
async def import_contacts_route(call: Call) -> ImportOutcome:
    """The same import as ``hub contacts import``: row errors (row, column, reason) are in the
    reply and the rest go in; a file refused whole (no header, too many or unknown columns) is
    422 ``invalid_csv`` and writes nothing. Uploading the same file again resumes an
    interrupted import, or answers ``already_done``. ``account_id``, if given, must be the
    caller's own account (403 ``other_account``). Files up to the body limit; larger ones
    through the command."""
    handle, name = tempfile.mkstemp(prefix="contact-import-", suffix=".csv")
    os.close(handle)
    path = Path(name)
    try:
        form = await _receive(call, path)
        if form.account_id is not None and form.account_id != call.principal.account_id:
            raise ApiError(403, "other_account", "contacts are imported into your own account")
        filename = "upload.csv"
        try:
            outcome = await run_import(
                call.hub.pool,
                path,
                account_id=call.principal.account_id,
                principal=call.principal,
                filename=filename,
                dry_run=form.dry_run,
                origin=call.origin,
                error_limit=ERROR_LIMIT,
            )
        except ImportRefused as exc:
            status = {"not_found": 404, "conflict": 409}.get(exc.code, 422)
            raise ApiError(status, exc.code, exc.message) from exc
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return msgspec.convert(outcome, ImportOutcome, from_attributes=True)


ROUTES = [import_contacts_route]
