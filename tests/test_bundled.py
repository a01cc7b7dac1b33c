"""The model-file resolver (oci_jupyter.engine.bundled) on small, fake model files.

Every test builds a tiny ``ModelFile`` spec (a few KB of random bytes cut into slices) and, where
needed, a fake offline mirror (one package per slice, in tmp_path, on sys.path) or a fake hub (a
local HTTP server on 127.0.0.1). Only ``test_bundled_model_is_verified`` touches the real 1 GB
model, through the session fixture.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import itertools
import json
import os
import shutil
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oci_jupyter.engine.bundled import (
    DEFAULT_MODEL,
    ModelFile,
    ModelFileUnavailable,
    resolve_model_file,
)
from oci_jupyter.texts import Text

PARTS = 12  # >= 10, so that lexical order (1, 10, 11, 12, 2, ...) differs from numeric order
HUB_REPO = "ocitest-org/Tiny-Coder-GGUF"
REQUIREMENTS_HINT = "--require-hashes -r requirements/bundled-model.txt"


# ---- helpers ---------------------------------------------------------------------------------
def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


@dataclass
class Mirror:
    """A fake offline mirror: packages ``<prefix>_part{n}`` each holding ``data/partNN.bin``."""

    root: Path
    spec: ModelFile
    slices: list[bytes]

    def package_dir(self, n: int) -> Path:
        assert self.spec.part_package is not None
        return self.root / self.spec.part_package.format(n=n)

    def slice_path(self, n: int) -> Path:
        return self.package_dir(n) / "data" / self.spec.part_filename.format(n=n)

    def remove(self) -> None:
        for n in range(1, self.spec.part_count + 1):
            shutil.rmtree(self.package_dir(n), ignore_errors=True)
        importlib.invalidate_caches()


@dataclass
class Hub:
    """A local stand-in for the Hugging Face hub; records every request path."""

    url: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def payload() -> bytes:
    # Not a multiple of the slice count, so the last slice is shorter than the others.
    return os.urandom(PARTS * 397 + 123)


@pytest.fixture
def spec(payload: bytes) -> ModelFile:
    token = uuid.uuid4().hex[:8]  # fresh module names: nothing cached from another test
    return ModelFile(
        filename=f"tiny-{token}.gguf",
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        hub_repo=HUB_REPO,
        part_package=f"ocitest_{token}_part{{n}}",
        part_count=PARTS,
        served_name="tiny",
    )


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def mirror(
    tmp_path: Path, spec: ModelFile, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> Mirror:
    root = tmp_path / "site"
    step = -(-len(payload) // PARTS)
    slices = [payload[i * step : (i + 1) * step] for i in range(PARTS)]
    assert b"".join(slices) == payload
    assert all(slices)
    made = Mirror(root=root, spec=spec, slices=slices)
    for n, piece in enumerate(slices, start=1):
        package = made.package_dir(n)
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text(
            "raise RuntimeError('the mirror must not be imported')\n"
        )
        made.slice_path(n).write_bytes(piece)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return made


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A ThreadingHTTPServer on 127.0.0.1 set as HF_ENDPOINT, with the hub switched on."""
    record: Hub = Hub(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.requests.append(self.path)
            if self.path in record.redirects:
                self.send_response(302)
                self.send_header("Location", record.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = record.blobs.get(self.path)
            if body is None:
                self.send_error(404, "Entry not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    _use_hub(monkeypatch, record.url)
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _use_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("OCI_HUB_OFFLINE", raising=False)
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def _hub_path(spec: ModelFile) -> str:
    return f"/{spec.hub_repo}/resolve/main/{spec.filename}"


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.partial")) if folder.exists() else []


# ---- the offline mirror ----------------------------------------------------------------------
def test_mirror_assembles_slices_in_numeric_order(
    spec: ModelFile, mirror: Mirror, payload: bytes, cache_dir: Path
) -> None:
    path = resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    assert path == cache_dir / spec.filename
    assert path.read_bytes() == payload
    lexical = sorted(range(1, PARTS + 1), key=str)
    assert b"".join(mirror.slices[n - 1] for n in lexical) != payload  # the order matters
    stamp = json.loads(_stamp(path).read_text())
    assert stamp["sha256"] == spec.sha256
    assert stamp["size"] == spec.size
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o444 == 0o444, oct(mode)  # readable by everyone, like any download
    assert _leftovers(cache_dir) == []


@pytest.mark.parametrize("damage", ["flipped-byte", "same-size-swap"])
def test_corrupt_slice_is_rejected_and_leaves_nothing(
    spec: ModelFile, mirror: Mirror, cache_dir: Path, damage: str
) -> None:
    if damage == "flipped-byte":
        broken = bytearray(mirror.slices[4])
        broken[17] ^= 0xFF
        mirror.slice_path(5).write_bytes(bytes(broken))
    else:  # right total size, wrong content: only the hash can tell
        mirror.slice_path(2).write_bytes(mirror.slices[2])
        mirror.slice_path(3).write_bytes(mirror.slices[1])

    with pytest.raises(ModelFileUnavailable, match="sha256") as caught:
        resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    assert spec.filename in str(caught.value)
    assert not (cache_dir / spec.filename).exists()
    assert not _stamp(cache_dir / spec.filename).exists()
    assert _leftovers(cache_dir) == []


def test_oversized_slice_is_rejected(spec: ModelFile, mirror: Mirror, cache_dir: Path) -> None:
    mirror.slice_path(PARTS).write_bytes(mirror.slices[-1] + b"extra")

    with pytest.raises(ModelFileUnavailable, match="more than the expected"):
        resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    assert not (cache_dir / spec.filename).exists()
    assert _leftovers(cache_dir) == []


def test_missing_slice_package_is_named_with_the_install_command(
    spec: ModelFile, mirror: Mirror, cache_dir: Path
) -> None:
    shutil.rmtree(mirror.package_dir(7))
    importlib.invalidate_caches()

    with pytest.raises(ModelFileUnavailable) as caught:
        resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    message = str(caught.value)
    assert spec.part_package is not None
    missing = spec.part_package.format(n=7).replace("_", "-")
    assert missing in message
    assert "1 of 12 packages missing" in message
    assert "pip install" in message
    assert REQUIREMENTS_HINT in message
    assert not (cache_dir / spec.filename).exists()
    assert _leftovers(cache_dir) == []


def test_slice_package_without_its_data_file_counts_as_missing(
    spec: ModelFile, mirror: Mirror, cache_dir: Path
) -> None:
    mirror.slice_path(11).unlink()

    with pytest.raises(ModelFileUnavailable) as caught:
        resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    assert spec.part_package is not None
    assert spec.part_package.format(n=11).replace("_", "-") in str(caught.value)


# ---- the cache -------------------------------------------------------------------------------
def test_verified_cached_copy_is_reused_without_the_mirror(
    spec: ModelFile, mirror: Mirror, payload: bytes, cache_dir: Path
) -> None:
    first = resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)
    mtime = first.stat().st_mtime_ns
    mirror.remove()

    events: list[tuple[Text, float | None]] = []
    again = resolve_model_file(
        spec, cache_dir=cache_dir, try_hub=False, progress=lambda *e: events.append(e)
    )

    assert again == first
    assert again.read_bytes() == payload
    assert again.stat().st_mtime_ns == mtime  # not rewritten
    assert events == []  # the stamp spares the hash: nothing to verify, nothing to assemble


def test_unstamped_cached_copy_is_hashed_once_then_stamped(
    spec: ModelFile, payload: bytes, cache_dir: Path
) -> None:
    cache_dir.mkdir()
    (cache_dir / spec.filename).write_bytes(payload)  # e.g. copied in by hand; no mirror at all

    events: list[tuple[Text, float | None]] = []
    path = resolve_model_file(
        spec, cache_dir=cache_dir, try_hub=False, progress=lambda *e: events.append(e)
    )

    assert path.read_bytes() == payload
    assert events
    assert all(what.code == "engine_verifying" for what, _ in events)
    assert events[-1][1] == 1.0
    assert _stamp(path).exists()


@pytest.mark.parametrize("stamp", ["missing", "stale-mtime", "other-sha256"])
def test_wrong_cached_copy_of_the_right_size_is_replaced_from_the_mirror(
    spec: ModelFile, mirror: Mirror, payload: bytes, cache_dir: Path, stamp: str
) -> None:
    target = resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)
    good = json.loads(_stamp(target).read_text())
    impostor = os.urandom(spec.size)
    target.write_bytes(impostor)
    if stamp == "missing":
        _stamp(target).unlink()
    elif stamp == "stale-mtime":  # the old stamp stays; the file changed after it was written
        os.utime(target, ns=(good["mtime_ns"] + 10**9, good["mtime_ns"] + 10**9))
    else:
        os.utime(target, ns=(good["mtime_ns"], good["mtime_ns"]))
        _stamp(target).write_text(json.dumps({**good, "sha256": "0" * 64}))
    assert target.stat().st_size == spec.size

    again = resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    assert again == target
    assert again.read_bytes() == payload
    fresh = json.loads(_stamp(again).read_text())
    assert fresh["sha256"] == spec.sha256
    assert fresh["mtime_ns"] == again.stat().st_mtime_ns
    assert _leftovers(cache_dir) == []


def test_wrong_cached_copy_without_any_source_fails_with_every_reason(
    spec: ModelFile, cache_dir: Path
) -> None:
    cache_dir.mkdir()
    (cache_dir / spec.filename).write_bytes(b"\0" * (spec.size - 1))

    with pytest.raises(ModelFileUnavailable) as caught:
        resolve_model_file(spec, cache_dir=cache_dir, try_hub=False)

    message = str(caught.value)
    assert "cached copy:" in message
    assert f"expected {spec.size:,}" in message
    assert "offline mirror:" in message
    assert REQUIREMENTS_HINT in message


# ---- who could have written the stamp --------------------------------------------------------
def _forge(target: Path, spec: ModelFile) -> None:
    """Replace the cached file with other bytes of the same size, and write the stamp that
    matches the new file: what anyone who can write the cache could do."""
    impostor = target.with_name("impostor")
    impostor.write_bytes(os.urandom(spec.size))
    os.replace(impostor, target)
    info = target.stat()
    forged = {
        "sha256": spec.sha256,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "inode": info.st_ino,
    }
    _stamp(target).write_text(json.dumps(forged))


@pytest.mark.parametrize("lax", ["folder", "parent", "stamp", "owner"])
def test_a_forged_stamp_where_others_can_write_is_hashed_again_and_refused(
    spec: ModelFile,
    mirror: Mirror,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    lax: str,
) -> None:
    cache = tmp_path / "shared" / "models"
    target = resolve_model_file(spec, cache_dir=cache, try_hub=False)
    mirror.remove()  # nothing to replace the impostor with: it must be refused
    _forge(target, spec)
    if lax == "folder":
        os.chmod(cache, 0o777)
        why = "can be written by others (mode 0777)"
    elif lax == "parent":  # others could rename the models folder away and put theirs
        os.chmod(cache.parent, 0o775)
        why = "can be written by others (mode 0775)"
    elif lax == "stamp":
        os.chmod(_stamp(target), 0o666)
        why = "can be written by others (mode 0666)"
    else:
        if os.getuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(cache, 4242, -1)
        why = "belongs to another user (uid 4242)"

    with pytest.raises(ModelFileUnavailable, match="sha256") as caught:
        resolve_model_file(spec, cache_dir=cache, try_hub=False)

    assert "cached copy:" in str(caught.value)
    assert why in caplog.text
    assert "hashing" in caplog.text


@pytest.mark.parametrize("where", ["private", "sticky-parent"])
def test_an_owner_only_cache_trusts_its_stamp_without_hashing(
    spec: ModelFile, mirror: Mirror, payload: bytes, tmp_path: Path, where: str
) -> None:
    cache = tmp_path / "home" / "models"
    first = resolve_model_file(spec, cache_dir=cache, try_hub=False)
    if where == "sticky-parent":  # like /tmp: others cannot rename what is not theirs
        os.chmod(cache.parent, 0o1777)
    mirror.remove()

    events: list[tuple[Text, float | None]] = []
    again = resolve_model_file(
        spec, cache_dir=cache, try_hub=False, progress=lambda *e: events.append(e)
    )

    assert again == first
    assert again.read_bytes() == payload
    assert events == []  # no hash: the stamp could only be this user's


# ---- the hub ---------------------------------------------------------------------------------
def test_hub_download(spec: ModelFile, hub: Hub, payload: bytes, cache_dir: Path) -> None:
    hub.blobs[_hub_path(spec)] = payload  # no mirror installed: the hub is the only source

    events: list[tuple[Text, float | None]] = []
    path = resolve_model_file(
        spec, cache_dir=cache_dir, hub_timeout=5.0, progress=lambda *e: events.append(e)
    )

    assert path.read_bytes() == payload
    assert hub.requests == [f"/{HUB_REPO}/resolve/main/{spec.filename}"]
    assert _stamp(path).exists()
    assert stat.S_IMODE(path.stat().st_mode) & 0o444 == 0o444
    assert any(what.code == "engine_downloading" for what, _ in events)
    assert _leftovers(cache_dir) == []


def test_hub_redirect_is_followed(
    spec: ModelFile, hub: Hub, payload: bytes, cache_dir: Path
) -> None:
    hub.redirects[_hub_path(spec)] = "/cdn/blob"  # the real hub redirects to its CDN
    hub.blobs["/cdn/blob"] = payload

    path = resolve_model_file(spec, cache_dir=cache_dir)

    assert path.read_bytes() == payload
    assert hub.requests == [_hub_path(spec), "/cdn/blob"]


def test_hub_404_falls_back_to_the_mirror(
    spec: ModelFile, hub: Hub, mirror: Mirror, payload: bytes, cache_dir: Path
) -> None:
    path = resolve_model_file(spec, cache_dir=cache_dir)

    assert hub.requests == [_hub_path(spec)]  # asked, answered 404
    assert path.read_bytes() == payload
    assert _leftovers(cache_dir) == []


def test_hub_serving_wrong_bytes_falls_back_to_the_mirror(
    spec: ModelFile, hub: Hub, mirror: Mirror, payload: bytes, cache_dir: Path
) -> None:
    hub.blobs[_hub_path(spec)] = os.urandom(spec.size)

    path = resolve_model_file(spec, cache_dir=cache_dir)

    assert hub.requests == [_hub_path(spec)]
    assert path.read_bytes() == payload
    assert _leftovers(cache_dir) == []


def test_hub_and_mirror_both_failing_reports_both(
    spec: ModelFile, hub: Hub, cache_dir: Path
) -> None:
    with pytest.raises(ModelFileUnavailable) as caught:
        resolve_model_file(spec, cache_dir=cache_dir)

    message = str(caught.value)
    assert f"hub: {hub.url}{_hub_path(spec)}: HTTP 404" in message
    assert "offline mirror:" in message
    assert REQUIREMENTS_HINT in message
    assert not (cache_dir / spec.filename).exists()


def test_black_holed_hub_falls_back_quickly(
    spec: ModelFile,
    mirror: Mirror,
    payload: bytes,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Listens (so connecting succeeds, or hangs once the backlog is full) but never answers.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(1)
        _use_hub(monkeypatch, f"http://127.0.0.1:{hole.getsockname()[1]}")

        started = time.monotonic()
        path = resolve_model_file(spec, cache_dir=cache_dir, hub_timeout=1.0)
        elapsed = time.monotonic() - started

    assert path.read_bytes() == payload
    assert elapsed < 5.0, f"fell back after {elapsed:.1f} s"


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "OCI_HUB_OFFLINE"])
def test_offline_switch_makes_no_hub_request(
    spec: ModelFile,
    hub: Hub,
    mirror: Mirror,
    payload: bytes,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    switch: str,
) -> None:
    hub.blobs[_hub_path(spec)] = payload
    monkeypatch.setenv(switch, "1")

    path = resolve_model_file(spec, cache_dir=cache_dir)

    assert path.read_bytes() == payload
    assert hub.requests == []


# ---- progress --------------------------------------------------------------------------------
def test_progress_fractions_increase_to_one(
    spec: ModelFile, mirror: Mirror, cache_dir: Path
) -> None:
    events: list[tuple[Text, float | None]] = []

    resolve_model_file(
        spec, cache_dir=cache_dir, try_hub=False, progress=lambda *e: events.append(e)
    )

    fractions = [fraction for _, fraction in events if fraction is not None]
    assert len(fractions) >= PARTS  # at least one report per slice
    assert all(0.0 < f <= 1.0 for f in fractions)
    assert all(a < b for a, b in itertools.pairwise(fractions)), fractions
    assert fractions[-1] == 1.0
    assert all(what.code == "engine_assembling" for what, _ in events)


# ---- the real model --------------------------------------------------------------------------
@pytest.mark.model
def test_bundled_model_is_verified(bundled_model: Path) -> None:
    assert bundled_model.name == DEFAULT_MODEL.filename
    assert bundled_model.stat().st_size == DEFAULT_MODEL.size
    stamp = json.loads(_stamp(bundled_model).read_text())
    assert stamp["sha256"] == DEFAULT_MODEL.sha256
    assert stamp["size"] == DEFAULT_MODEL.size
    assert stamp["mtime_ns"] == bundled_model.stat().st_mtime_ns
