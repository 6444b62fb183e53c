"""开放文件: files a department uploads for its open entries, served by the portal.

Open data comes from a resource's shared store (fed by the exchange) or from files the
department uploads (SPEC §7): a PDF report, a spreadsheet kept by hand, a ZIP of map
layers. An upload is streamed to disk in chunks while its SHA-256 is computed — never
held in memory — and stored under that digest (``data_dir/open-files/ab/abcd…``), so the
portal can give the digest with the link and the same bytes uploaded twice are kept
once. On disk the file is sealed at rest as a stream (``security.atrest``, the cipher
``GOVSHARE_AT_REST_CIPHER`` names; a 有条件开放 file is not for everyone's eyes) and
opened chunk by chunk as it is served; files stored before, or with the cipher set to
``none``, are served as they are.

What is served follows the portal's one rule of what is open
(:mod:`govshare.opendata.datasets`): files of an entry that is published, listed and
无条件开放 today, not withdrawn. A file of an entry that stops being open simply stops
being served; nothing needs to be deleted. 有条件开放 entries keep their files to
themselves except for a developer key approved for that dataset.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.errors import GovshareError, InvalidInput, NotFound
from govshare.opendata import datasets as ds
from govshare.opendata.datasets import Dataset, OpenType
from govshare.opendata.models import OpenFile
from govshare.rules.fields import has_control_characters
from govshare.security import audit
from govshare.security.atrest import AtRestCipher, cipher_for
from govshare.security.service import Principal

CHUNK = 1 << 20
MAX_NAME = 200
MAX_DESCRIPTION = 500


@dataclass(frozen=True, slots=True)
class Kind:
    media_type: str
    magic: tuple[bytes, ...] = ()  # the file must start with one of these; () = text
    label: str = ""


_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
KINDS: dict[str, Kind] = {
    "csv": Kind("text/csv; charset=utf-8", label="CSV"),
    "txt": Kind("text/plain; charset=utf-8", label="文本"),
    "json": Kind("application/json", label="JSON"),
    "geojson": Kind("application/geo+json", label="GeoJSON"),
    "xml": Kind("application/xml", label="XML"),
    "pdf": Kind("application/pdf", (b"%PDF-",), "PDF"),
    "xlsx": Kind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP, "XLSX"),
    "docx": Kind(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP, "DOCX"
    ),
    "xls": Kind("application/vnd.ms-excel", _OLE, "XLS"),
    "doc": Kind("application/msword", _OLE, "DOC"),
    "zip": Kind("application/zip", _ZIP, "ZIP"),
}


class FileTooLarge(GovshareError):
    status = 413
    code = "body_too_large"


def read_stored(settings: Settings, path: Path) -> Iterator[bytes]:
    """The plain bytes of a stored file, chunk by chunk (opened as it is read)."""
    with path.open("rb") as f:
        yield from cipher_for(settings).open_stream(f, CHUNK)


def files_dir(data_dir: Path) -> Path:
    return data_dir / "open-files"


def stored_path(data_dir: Path, sha256: str) -> Path:
    return files_dir(data_dir) / sha256[:2] / sha256


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def clean_name(raw: str) -> str:
    """The name a file is listed and saved as: the last path part of what the browser
    sent (some send ``C:\\Users\\…``), refused when empty, too long, with control
    characters or of a kind the portal does not serve."""
    name = PureWindowsPath(PurePosixPath(raw.strip()).name).name.strip()
    if not name or name in (".", ".."):
        raise InvalidInput.about("请选择要上传的文件 (no file)", "file", "请选择文件")
    if len(name) > MAX_NAME or has_control_characters(name):
        raise InvalidInput.about(
            "文件名过长或含控制字符 (bad file name)", "file", f"文件名不能超过 {MAX_NAME} 个字"
        )
    if extension(name) not in KINDS:
        allowed = "、".join(sorted(KINDS))
        raise InvalidInput.about(
            f"不支持的文件类型：{name} (file type not served)", "file", f"可上传：{allowed}"
        )
    return name


def _check_start(kind: Kind, name: str, head: bytes) -> None:
    if kind.magic:
        if not head.startswith(kind.magic):
            raise InvalidInput.about(
                f"文件内容与扩展名不符：{name} 不是 {kind.label} 文件 (content does not match)",
                "file",
                "请检查文件是否损坏或扩展名是否正确",
            )
        return
    if b"\x00" in head:
        raise InvalidInput.about(
            f"{name} 含有二进制内容，不是文本文件 (binary content in a text file)",
            "file",
            "请上传 UTF-8 编码的文本",
        )


def uploadable(session: Session, caller: Principal) -> list[Resource]:
    """The entries the caller may upload files for: its department's open entries (the
    platform: every open entry), by code."""
    query = select(Resource).where(Resource.id.in_(ds.open_select(Resource.id)))
    if not caller.is_admin:
        query = query.where(Resource.provider_department_id == caller.department_id)
    return list(session.scalars(query.order_by(Resource.code)))


def _own_open_entry(session: Session, caller: Principal, resource_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    mine = resource is not None and (
        caller.is_admin or resource.provider_department_id == caller.department_id
    )
    if resource is None or not mine:
        raise InvalidInput.about(
            "没有这个本部门的目录 (no such entry of your department)", "resource_id", "请选择目录"
        )
    is_open = session.scalar(ds.open_select(Resource.id).where(Resource.id == resource_id))
    if is_open is None:
        raise InvalidInput.about(
            "只能为已发布且向社会开放的目录上传文件 (entry is not open)",
            "resource_id",
            "请先在目录中登记开放属性并发布",
        )
    return resource


def store(
    session: Session,
    data_dir: Path,
    caller: Principal,
    *,
    resource_id: int,
    name: str,
    description: str,
    source: BinaryIO,
    limit: int,
    now: datetime,
    cipher: AtRestCipher | None = None,
) -> OpenFile:
    """Stream ``source`` to the store (sealed with ``cipher`` when given) and list it
    under the entry (audited). Refused with nothing kept: not the caller's open entry, a
    bad name or kind, content that does not match the kind, empty, or over ``limit``
    bytes."""
    _own_open_entry(session, caller, resource_id)
    name = clean_name(name)
    description = description.strip()
    if len(description) > MAX_DESCRIPTION or has_control_characters(description):
        raise InvalidInput.about(
            "文件说明过长或含控制字符 (bad description)",
            "description",
            f"不能超过 {MAX_DESCRIPTION} 个字",
        )
    kind = KINDS[extension(name)]
    folder = files_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload-")

    def checked() -> Iterator[bytes]:
        nonlocal size
        while chunk := source.read(CHUNK):
            if size == 0:
                _check_start(kind, name, chunk)
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(
                    f"文件超过 {limit // (1 << 20)} MiB 上限 (file too large)",
                    details=[{"field": "file", "message": f"最多 {limit} 字节"}],
                )
            digest.update(chunk)
            yield chunk

    try:
        with os.fdopen(fd, "wb") as out:
            for piece in checked() if cipher is None else cipher.seal_stream(checked()):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise InvalidInput.about(f"{name} 是空文件 (empty file)", "file", "请选择有内容的文件")
        sha = digest.hexdigest()
        target = stored_path(data_dir, sha)
        target.parent.mkdir(exist_ok=True)
        os.replace(temp, target)  # the same bytes again replace themselves
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    row = OpenFile(
        resource_id=resource_id,
        name=name,
        description=description,
        media_type=kind.media_type,
        size=size,
        sha256=sha,
        uploaded_by=caller.name,
        uploaded_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        caller.actor,
        "open_file.upload",
        object_type="open_file",
        object_id=row.id,
        after={"resource_id": resource_id, "name": name, "size": size, "sha256": sha},
    )
    return row


def department_files(
    session: Session, caller: Principal, resource_id: int | None = None
) -> list[tuple[OpenFile, Resource]]:
    """The files of the caller's department's entries (the platform: all), or of one of
    them, newest first."""
    query = select(OpenFile, Resource).join(Resource, Resource.id == OpenFile.resource_id)
    if resource_id is not None:
        query = query.where(OpenFile.resource_id == resource_id)
    if not caller.is_admin:
        query = query.where(Resource.provider_department_id == caller.department_id)
    rows = session.execute(query.order_by(OpenFile.uploaded_at.desc(), OpenFile.id.desc()))
    return [(f, r) for f, r in rows]


def withdraw(session: Session, caller: Principal, file_id: int, now: datetime) -> OpenFile:
    """撤下: the portal stops listing and serving it at once (audited); the row stays."""
    found = session.get(OpenFile, file_id)
    resource = session.get(Resource, found.resource_id) if found else None
    if (
        found is None
        or resource is None
        or not (caller.is_admin or resource.provider_department_id == caller.department_id)
    ):
        raise NotFound(f"文件 {file_id} 不存在 (no such file)")
    if found.withdrawn_at is None:
        found.withdrawn_at = now
        audit.record(
            session,
            caller.actor,
            "open_file.withdraw",
            object_type="open_file",
            object_id=found.id,
            before={"resource_id": found.resource_id, "name": found.name},
        )
    return found


def served_files(session: Session, dataset: Dataset, *, granted: bool = False) -> list[OpenFile]:
    """The files served for an open dataset: those of a 无条件开放 one to anyone, those
    of a 有条件开放 one only to a developer key approved for it (``granted``)."""
    if dataset.open_type is not OpenType.UNCONDITIONAL and not granted:
        return []
    return list(
        session.scalars(
            select(OpenFile)
            .where(OpenFile.resource_id == dataset.resource_id, OpenFile.withdrawn_at.is_(None))
            .order_by(OpenFile.uploaded_at.desc(), OpenFile.id.desc())
        )
    )


def kind_label(f: OpenFile) -> str:
    return KINDS.get(extension(f.name), Kind("")).label or extension(f.name).upper()
