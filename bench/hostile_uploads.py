"""Hostile uploads: what a zip bomb costs evalhub's upload check, beside what reading it the old way costs.

Each case runs in its own child process, so its peak memory (max RSS) is its own:
- baseline: the pre-issue-11 path, python-docx opening the upload in the worker (``docx.Document``);
- evalhub:  ``core.files.check_upload`` (declared sizes and ratio, then streamed with hard caps).

    .venv/bin/python bench/hostile_uploads.py            # 200 MiB and 1 GiB whitespace bombs, a lying directory
    .venv/bin/python bench/hostile_uploads.py --quick    # 200 MiB only

Target (issue 11): a hostile upload costs at most a few MB and about a second.
"""
from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def whitespace_bomb(unpacked_mib: int) -> bytes:
    """A real .docx (python-docx's own) whose word/document.xml carries ``unpacked_mib`` MiB of spaces."""
    import docx

    source = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("巴州统计局 2025 年项目支出绩效评价报告")
    document.save(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in original.infolist():
            body = original.read(info.filename)
            if info.filename != "word/document.xml":
                z.writestr(info.filename, body)
                continue
            head, tail = body.split(b"<w:body>", 1)
            with z.open("word/document.xml", "w", force_zip64=True) as fh:
                fh.write(head + b"<w:body>")
                chunk = b" " * (1 << 20)
                for _ in range(unpacked_mib):
                    fh.write(chunk)
                fh.write(tail)
    return out.getvalue()


def lying_directory(unpacked_mib: int) -> bytes:
    """The same bomb with its central directory claiming 4 KB unpacked for document.xml."""
    data = bytearray(whitespace_bomb(unpacked_mib))
    end = data.rfind(b"PK\x05\x06")
    cd_offset = int.from_bytes(data[end + 16:end + 20], "little")
    pos = cd_offset
    while data[pos:pos + 4] == b"PK\x01\x02":
        name_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        extra_len = int.from_bytes(data[pos + 30:pos + 32], "little")
        comment_len = int.from_bytes(data[pos + 32:pos + 34], "little")
        name = bytes(data[pos + 46:pos + 46 + name_len])
        if name == b"word/document.xml" and extra_len == 0:
            data[pos + 24:pos + 28] = (4096).to_bytes(4, "little")
        pos += 46 + name_len + extra_len + comment_len
    return bytes(data)


def _child(mode: str, path: str) -> None:
    data = Path(path).read_bytes()
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    outcome = "accepted"
    if mode == "baseline":
        import docx

        try:
            document = docx.Document(io.BytesIO(data))
            "\n".join(p.text for p in document.paragraphs)
        except Exception as exc:  # noqa: BLE001 — the old path refused some bombs only after parsing them
            outcome = f"refused ({type(exc).__name__})"
    else:
        sys.path.insert(0, str(ROOT))
        from evalhub import create_app
        from evalhub.core import files
        from evalhub.core.errors import ValidationFailed

        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "bench"})
        with app.app_context():
            start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            try:
                files.check_upload("评价报告.docx", data, ("docx",))
            except ValidationFailed as exc:
                outcome = f"refused: {exc.message[:40]}…"
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "extra_mb": (peak - start_rss) / 1024, "outcome": outcome}, ensure_ascii=False))


def measure(mode: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    if result.returncode != 0:
        return {"seconds": float("nan"), "extra_mb": float("nan"), "outcome": f"child failed: {result.stderr[-200:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    quick = "--quick" in sys.argv
    cases = [("whitespace bomb, 200 MiB unpacked", whitespace_bomb, 200)]
    if not quick:
        cases += [("whitespace bomb, 1 GiB unpacked", whitespace_bomb, 1024),
                  ("lying central directory, 200 MiB", lying_directory, 200)]
    tmp = ROOT / "instance" / "bench-uploads"
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"{'case':38} {'upload':>9} | {'baseline s':>10} {'+MB':>7}  outcome | {'evalhub s':>9} {'+MB':>6}  outcome")
    for label, build, size in cases:
        path = tmp / f"{build.__name__}-{size}.docx"
        path.write_bytes(build(size))
        base = measure("baseline", path)
        ours = measure("evalhub", path)
        print(f"{label:38} {path.stat().st_size / 1e6:7.2f}MB | {base['seconds']:10.2f} {base['extra_mb']:7.0f}  "
              f"{base['outcome'][:22]:22} | {ours['seconds']:9.3f} {ours['extra_mb']:6.1f}  {ours['outcome'][:30]}")
        os.remove(path)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
