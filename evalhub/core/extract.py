"""Text extraction from stored documents, bounded in time and memory.

python-docx and pdfplumber read a whole document into memory and can take minutes on a document built
to be slow (a 0.5 MB .docx of 100,000 tiny paragraphs: ~12 s; a 20 MB document.xml: ~50 s and +400 MB).
Neither library can be interrupted or capped from inside, so the parsing runs in a child process: the
child caps its own address space with ``resource.setrlimit(RLIMIT_AS)`` and the caller kills it when the
time limit passes. The web worker's own memory never grows with the document.

The child is this file loaded by a fresh interpreter with the caller's import path: it imports only the
parsers — not the application, not the caller's ``__main__`` (which ``multiprocessing``'s spawn and
forkserver would re-run), and it is not forked from a threaded worker (which can deadlock). Starting one
costs about half a second, so a couple of idle children are kept per worker process and reused: an
extraction then costs about a millisecond more than in-process. A child that ran out of time or memory,
crashed, or grew large is discarded; the next extraction starts a fresh one. A child that cannot start
at all (the parsers not importable) is a server error, never blamed on the uploaded file.

Only the parsing is here; what is accepted (type, size, zip limits) is decided by ``core.files`` before.
This module imports nothing from the application.
"""
from __future__ import annotations

import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import threading
import time

IDLE_CHILDREN = 2           # kept for reuse per worker process
START_SECONDS = 60          # for a child to import the parsers and say it is ready
RECYCLE_RSS_MB = 300        # a child whose peak grew beyond this is not reused (CPython rarely gives memory back)
_HEADER = struct.Struct("<I")


class ExtractionError(Exception):
    """The text could not be extracted; ``reason`` is "timeout", "memory" or "corrupt"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --- the parsers (run in the child, or in-process when isolation is off) ---------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC, _T, _TAB = (_W + t for t in ("p", "tbl", "tr", "tc", "t", "tab"))
_BREAKS = {_W + "br", _W + "cr"}
_TXBX = _W + "txbxContent"
# Subtrees whose text is not what the document shows: deleted and moved-away revisions, the fallback copy of a
# text box Word writes beside its DrawingML one (mc:Fallback), and properties (no text; skipped for speed).
_SKIP = {_W + t for t in ("del", "moveFrom", "pPr", "rPr", "tblPr", "trPr", "tcPr", "sectPr", "tblGrid")} | {
    "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"}


_ALT_CHUNK = _W + "altChunk"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
NESTED_MAX_BYTES = 50 * 1024 * 1024  # what a .docx inside a .docx may unpack to
ALT_CHUNK_DEPTH = 3  # a chunk that is a .docx may hold chunks of its own; deeper than this is not read


def _blocks(container, lines: list[str], alt=None) -> None:
    """The lines of block content (the body, a cell, a text box, a content control) in document order.
    ``alt`` reads a ``w:altChunk`` (content Word imports from another file when it opens the document)."""
    for child in container:
        tag = child.tag
        if tag == _P:
            _paragraph(child, lines, alt)
        elif tag == _TBL:
            _table(child, lines, alt)
        elif tag == _ALT_CHUNK:
            if alt is not None:
                lines.extend(alt(child.get(_R_ID)))
        elif tag not in _SKIP and isinstance(tag, str):  # content controls, custom XML: their content
            _blocks(child, lines, alt)


def _paragraph(p, lines: list[str], alt=None) -> None:
    parts: list[str] = []
    _inline(p, parts, lines, alt)
    lines.append("".join(parts))


def _inline(element, parts: list[str], lines: list[str], alt=None) -> None:
    for child in element:
        tag = child.tag
        if tag == _T:
            parts.append(child.text or "")
        elif tag == _TAB:
            parts.append("\t")
        elif tag in _BREAKS:
            parts.append("\n")
        elif tag == _TXBX:  # a text box: its paragraphs are lines of their own where it is anchored
            lines.append("".join(parts))
            parts.clear()
            _blocks(child, lines, alt)
        elif tag not in _SKIP and isinstance(tag, str):  # runs, hyperlinks, insertions, drawings, fields
            _inline(child, parts, lines, alt)


def _table(tbl, lines: list[str], alt=None) -> None:
    """Each row one line of tab-separated cells (a cell's own lines, nested tables included, joined by a line
    break); a cell merged over rows or columns counts once, as Word stores it."""
    for row in _children(tbl, _TR):
        cells = []
        for cell in _children(row, _TC):
            inner: list[str] = []
            _blocks(cell, inner, alt)
            cells.append("\n".join(line.strip() for line in inner if line.strip()))
        lines.append("\t".join(cells))


class _HtmlText:
    """The text of an HTML chunk, a line per block (p, div, li, headings, table rows; cells tab-separated)."""

    BLOCKS = {"p", "div", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "blockquote"}

    def __init__(self) -> None:
        from html.parser import HTMLParser

        outer = self
        self.parts: list[str] = []
        self.hidden = 0

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag in ("script", "style", "head"):
                    outer.hidden += 1
                elif tag in outer.BLOCKS:
                    outer.parts.append("\n")
                elif tag in ("td", "th"):
                    outer.parts.append("\t")

            def handle_endtag(self, tag):
                if tag in ("script", "style", "head"):
                    outer.hidden = max(0, outer.hidden - 1)
                elif tag in outer.BLOCKS:
                    outer.parts.append("\n")

            def handle_data(self, data):
                if not outer.hidden:
                    outer.parts.append(" ".join(data.split("\n")))

        self.parser = Parser(convert_charrefs=True)

    def lines(self, html: str) -> list[str]:
        self.parser.feed(html)
        self.parser.close()
        return [line.strip("\t ").replace("\xa0", " ") for line in "".join(self.parts).split("\n")
                if line.strip("\t \xa0")]


def _decode(blob: bytes, charset: str | None) -> str:
    """Text in the charset given, else the one the HTML declares, else UTF-8, else GB18030 (WPS, older Word)."""
    found = re.search(rb"charset=[\"']?([A-Za-z0-9_-]+)", blob[:2048])
    for name in filter(None, [charset, found.group(1).decode() if found else None, "utf-8", "gb18030"]):
        try:
            return blob.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return blob.decode("utf-8", "replace")


def _chunk_lines(blob: bytes, content_type: str, depth: int) -> list[str]:
    """What an altChunk part holds, as lines: another .docx (read the same way), HTML, a web archive (.mht: its
    HTML), plain text. RTF is not read (no parser here): its chunk stays empty."""
    content_type = (content_type or "").lower()
    if "wordprocessingml" in content_type or blob[:2] == b"PK":
        return _docx_lines(blob, depth + 1) if depth + 1 < ALT_CHUNK_DEPTH else []
    if "html" in content_type:
        return _HtmlText().lines(_decode(blob, None))
    if "rfc822" in content_type or "multipart/related" in content_type:
        import email

        message = email.message_from_bytes(blob)
        for part in message.walk():
            if part.get_content_type() == "text/html":
                return _HtmlText().lines(_decode(part.get_payload(decode=True) or b"", part.get_content_charset()))
            if part.get_content_type() == "text/plain":
                return _decode(part.get_payload(decode=True) or b"", part.get_content_charset()).splitlines()
        return []
    if content_type.startswith("text/plain"):
        return _decode(blob, None).splitlines()
    return []


_CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_WORD_MAIN = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
              "application/vnd.ms-word.document.macroEnabled.main+xml",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml")


def _docx_lines(data: bytes, depth: int = 0) -> list[str]:
    """Read straight from the package (zip + lxml), not through python-docx: python-docx parses every part typed as
    a document body as XML, so a .docx holding another .docx as an altChunk (typed so by the Open XML SDK) would not
    open at all."""
    import posixpath
    import zipfile

    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    package = zipfile.ZipFile(io.BytesIO(data))
    if depth and sum(i.file_size for i in package.infolist()) > NESTED_MAX_BYTES:
        return []  # core.files checked the outer package's sizes, not those of a package inside it

    def xml(name: str):
        return etree.fromstring(package.read(name), parser)

    types = xml("[Content_Types].xml")
    defaults = {d.get("Extension", "").lower(): d.get("ContentType") for d in types.iter(_CT + "Default")}
    overrides = {o.get("PartName", "").lstrip("/"): o.get("ContentType") for o in types.iter(_CT + "Override")}

    def content_type(name: str) -> str:
        return overrides.get(name) or defaults.get(name.rsplit(".", 1)[-1].lower(), "")

    main = next((r.get("Target", "").lstrip("/") for r in xml("_rels/.rels").iter(_RELS)
                 if r.get("Type", "").endswith("/officeDocument")), None)
    if main is None or content_type(main) not in _WORD_MAIN:
        raise ValueError(f"not a Word document: {main!r} is {content_type(main) if main else 'missing'}")
    folder, base = posixpath.split(main)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    targets = {}
    if rels_name in package.namelist():
        for r in xml(rels_name).iter(_RELS):
            if r.get("TargetMode") != "External":
                target = r.get("Target", "")
                targets[r.get("Id")] = (target.lstrip("/") if target.startswith("/")
                                        else posixpath.normpath(posixpath.join(folder, target)))

    def alt(rid: str | None) -> list[str]:
        name = targets.get(rid)
        if name is None or name not in package.namelist():
            return []
        return _chunk_lines(package.read(name), content_type(name), depth)

    body = xml(main).find(_W + "body")
    lines: list[str] = []
    if body is not None:
        _blocks(body, lines, alt)
    return lines


def _children(element, tag: str):
    """``element``'s children named ``tag``, also inside content controls and custom XML wrapped around them."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag not in _SKIP and child.tag not in (_P, _TBL, _TR, _TC) and isinstance(child.tag, str):
            yield from _children(child, tag)


def docx_text(data: bytes) -> str:
    """The body's text in document order: paragraphs, table rows where the table stands (nested tables in their
    cell), text boxes where they are anchored, and the content of ``w:altChunk`` parts (documents exported by
    some office systems are nothing else). python-docx's ``paragraphs`` and ``tables`` give neither the order
    nor the text boxes."""
    return "\n".join(_docx_lines(data))


def pdf_text(data: bytes) -> str:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join((page.extract_text() or "") for page in pdf.pages)


PARSERS = {"docx": docx_text, "pdf": pdf_text}


def _parse(kind: str, path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    return PARSERS[kind](data)


# --- framing: a 4-byte length, then the bytes ----------------------------------------------------------------

def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None = None) -> bytes:
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return _read_exactly(fd, size, deadline)


# --- the child ---------------------------------------------------------------------------------------------

def _limit_memory(extra_bytes: int) -> None:
    """Cap the child's address space at what it already maps (the interpreter and the parsers) plus
    ``extra_bytes``: beyond that an allocation fails with MemoryError instead of growing the machine's."""
    import resource

    with open("/proc/self/statm") as fh:
        base = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = base + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ``ru_maxrss``: Linux carries the parent's peak across
    fork and exec into it, so a child started by a large worker would look large from its first request."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(extra_bytes: int) -> None:
    """The child's loop: receive kind and path, answer status, whether it stays, and the text (or what
    went wrong), until its input closes. Replies go to a private copy of stdout; anything a library
    prints goes to stderr."""
    requests, replies = 0, os.dup(1)
    os.dup2(2, 1)
    import email  # noqa: F401 — loaded before the limit, once for every document
    import zipfile  # noqa: F401
    from html import parser  # noqa: F401

    import pdfplumber  # noqa: F401
    from lxml import etree  # noqa: F401

    try:
        _limit_memory(extra_bytes)
    except (OSError, ValueError, IndexError):
        print("evalhub extract: could not limit the child's memory", file=sys.stderr)
    start_rss_mb = _peak_rss_mb()
    _write_frame(replies, b"ready")
    while True:
        try:
            kind, _, path = _read_frame(requests).decode().partition("\0")
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            status, payload = "ok", _parse(kind, path)
        except MemoryError:
            status, payload = "memory", ""
        except Exception as exc:  # noqa: BLE001 — a document that cannot be read, said as such
            # libxml2 reports a failed allocation as a syntax error ("unknown error", "Memory allocation
            # failed"); a child that grew to half its allowance before failing is taken to have run out
            grew = (_peak_rss_mb() - start_rss_mb) * 1024 * 1024 > extra_bytes / 2
            message = str(exc).lower()
            memory = grew or "memory" in message or "unknown error" in message
            status, payload = ("memory", "") if memory else ("corrupt", type(exc).__name__)
        stays = status == "ok" and _peak_rss_mb() <= RECYCLE_RSS_MB
        try:
            _write_frame(replies, f"{status}\0{int(stays)}\0".encode() + payload.encode("utf-8", "surrogatepass"))
        except (MemoryError, OSError):
            return  # the parent sees the pipe close
        payload = ""
        if not stays:
            return


# --- the parent's side --------------------------------------------------------------------------------------

# Run by ``python -c``: drop the current directory from the path first, then take the caller's path.
_BOOT = ("import sys; del sys.path[0]; import json, importlib.util as u; sys.path[:] = json.loads(sys.argv[3]); "
         "spec = u.spec_from_file_location('evalhub_extract_child', sys.argv[1]); m = u.module_from_spec(spec); "
         "sys.modules[spec.name] = m; spec.loader.exec_module(m); m._serve(int(sys.argv[2]))")


class _Child:
    def __init__(self, extra_bytes: int) -> None:
        self.extra_bytes = extra_bytes
        self.owner = os.getpid()
        path = json.dumps([os.path.abspath(p) for p in sys.path])
        self.process = subprocess.Popen(
            [sys.executable, "-E", "-s", "-c", _BOOT, os.path.abspath(__file__), str(extra_bytes), path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        try:
            ready = _read_frame(self.process.stdout.fileno(), time.monotonic() + START_SECONDS)
        except (TimeoutError, EOFError, OSError) as exc:
            self.close()
            raise RuntimeError("the text extraction child process did not start (are python-docx and "
                               "pdfplumber importable?)") from exc
        if ready != b"ready":
            self.close()
            raise RuntimeError(f"the text extraction child process answered {ready[:50]!r} at start")

    def usable(self, extra_bytes: int) -> bool:
        return self.owner == os.getpid() and self.extra_bytes == extra_bytes and self.process.poll() is None

    def send(self, kind: str, path: str) -> None:
        _write_frame(self.process.stdin.fileno(), f"{kind}\0{path}".encode())

    def answer(self, seconds: float) -> tuple[str, bool, str]:
        reply = _read_frame(self.process.stdout.fileno(), time.monotonic() + seconds)
        status, stays, payload = reply.split(b"\0", 2)
        return status.decode(), stays == b"1", payload.decode("utf-8", "surrogatepass")

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # inherited through a fork: not ours
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


_pool_lock = threading.Lock()
_idle: list[_Child] = []


def _take(extra_bytes: int) -> _Child:
    with _pool_lock:
        while _idle:
            child = _idle.pop()
            if child.usable(extra_bytes):
                return child
            child.close()
    return _Child(extra_bytes)


def _give_back(child: _Child) -> None:
    with _pool_lock:
        if len(_idle) < IDLE_CHILDREN and child.owner == os.getpid():
            _idle.append(child)
            return
    child.close()


def shutdown() -> None:
    """Stop the idle children (they also stop by themselves when this process exits: their input closes)."""
    with _pool_lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.close()


def extract(kind: str, path: str, *, seconds: float, memory_mb: int, isolated: bool = True) -> str:
    """The text of the document at ``path`` (``kind`` "docx" or "pdf"), or ExtractionError."""
    if not isolated:
        try:
            return _parse(kind, path)
        except MemoryError as exc:
            raise ExtractionError("memory") from exc
        except Exception as exc:  # noqa: BLE001
            raise ExtractionError("corrupt", type(exc).__name__) from exc
    child = _take(memory_mb * 1024 * 1024)
    try:
        child.send(kind, str(path))
    except OSError:  # an idle child that died meanwhile (killed from outside): the document never reached it
        child.close()
        child = _Child(memory_mb * 1024 * 1024)
        child.send(kind, str(path))
    try:
        status, stays, payload = child.answer(seconds)
    except TimeoutError as exc:
        child.close()
        raise ExtractionError("timeout") from exc
    except (EOFError, OSError, ValueError) as exc:  # the child died: killed at its memory limit, or crashed
        child.close()
        raise ExtractionError("memory", "the child exited") from exc
    if stays:
        _give_back(child)
    else:
        child.close()
    if status != "ok":
        raise ExtractionError(status, payload)
    return payload
