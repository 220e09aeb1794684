"""What the public copy of a large .docx costs (core/scrub.py), beside the same module at another git revision.

A report of N fields, as a long report with a table of contents has them: per entry a bookmark, a TOC line (a
hyperlink to the bookmark holding a PAGEREF field), a cross-reference (REF), a web link with a screen tip, a field
unlinked (DOCPROPERTY), a content control with a tag and an alias; every field in its own runs, as Word writes them.

    .venv/bin/python bench/scrub_fields.py                       # 20k, 40k, 80k fields, this tree only
    .venv/bin/python bench/scrub_fields.py --against HEAD~3      # and the module as it was at HEAD~3, same run
    .venv/bin/python bench/scrub_fields.py --plain --against …   # a report nobody named anything in (_Toc… only)

Each size is timed three times (best of three, CPU time of this process), alternating the two modules so both see the same machine load.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _field(instruction: str, result: str) -> str:
    return (f'<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve">{instruction}'
            f'</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>{result}</w:t></w:r>'
            f'<w:r><w:fldChar w:fldCharType="end"/></w:r>')


def report(fields: int, names: bool = True) -> bytes:
    """A .docx holding ``fields`` fields (four per entry, see above); without ``names``, as Word writes a report
    nobody named anything in: the bookmarks are Word's (_Toc…), no screen tip, no tag or alias."""
    import docx

    source = io.BytesIO()
    docx.Document().save(source)
    entries = []
    for i in range(fields // 4):
        name = f"第{i}节_王建国" if names else f"_Toc{100000000 + i}"
        tip = ' \\o "联系人 王建国"' if names else ""
        control = (f'<w:sdt><w:sdtPr><w:alias w:val="联系人"/><w:tag w:val="王建国{i}"/><w:id w:val="{i}"/></w:sdtPr>'
                   f'<w:sdtContent><w:r><w:t>（略）</w:t></w:r></w:sdtContent></w:sdt>') if names else ""
        entries.append(
            f'<w:p><w:hyperlink w:anchor="{name}" w:history="1"><w:r><w:t>第 {i} 节</w:t></w:r>'
            + _field(f" PAGEREF {name} \\h ", str(i)) + "</w:hyperlink></w:p>"
            f'<w:p><w:bookmarkStart w:id="{i}" w:name="{name}"/><w:r><w:t>第 {i} 节 正文</w:t></w:r>'
            f'<w:bookmarkEnd w:id="{i}"/>' + _field(f" REF {name} \\h ", f"第 {i} 节")
            + _field(f' HYPERLINK "https://www.ccgp.gov.cn/"{tip} ', "网站")
            + _field(" DOCPROPERTY Company ", "某公司") + control + "</w:p>")
    body = "".join(entries).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in original.infolist():
            content = original.read(info)
            if info.filename == "word/document.xml":
                content = content.replace(b"<w:sectPr", body + b"<w:sectPr", 1)
            target.writestr(info.filename, content)
    return out.getvalue()


def module_at(revision: str):
    """core/scrub.py as it was at ``revision``, imported under another name."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:evalhub/core/scrub.py"], check=True,
                          capture_output=True).stdout
    path = Path("/tmp") / f"scrub_at_{revision.replace('/', '_').replace('~', '_')}.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(module, data: bytes, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()  # CPU time: the machine may be shared
        module.scrubbed("docx", data)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="a git revision whose core/scrub.py is timed too")
    parser.add_argument("--sizes", default="20000,40000,80000")
    parser.add_argument("--plain", action="store_true", help="Word's own bookmark names, no screen tip, no control")
    args = parser.parse_args()
    from evalhub.core import scrub

    other = module_at(args.against) if args.against else None
    print(f"{'fields':>8} {'document.xml':>13} {'this tree':>10}" + (f" {args.against:>12}" if other else ""))
    for size in (int(s) for s in args.sizes.split(",")):
        data = report(size, names=not args.plain)
        unpacked = len(zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml"))
        times = {}
        for _ in range(3):
            times["new"] = min(times.get("new", 9e9), best_of(scrub, data, 1))
            if other:
                times["old"] = min(times.get("old", 9e9), best_of(other, data, 1))
        print(f"{size:>8} {unpacked / 1e6:>10.1f} MB {times['new']:>9.2f}s"
              + (f" {times['old']:>11.2f}s" if other else ""), flush=True)


if __name__ == "__main__":
    main()
