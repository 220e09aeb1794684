"""Page speed at province scale, side by side with a bare one-row page (issue 18).

    .venv/bin/python bench/web.py postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench \
        [--scales 1 2] [--seconds 12] [--users 16] [--workers 4]

For each scale it creates a fresh database ``<name>_<scale>x`` (dropped first if present), migrates it with
``flask db upgrade``, fills it with ``bench/province.py`` (scale 1: ~500 firms, 3,000 experts, 20,000
engagements over ten years), then:

1. counts the SQL statements of each page and times it in-process against the bare page (Flask's test
   client, after one warm request; ``--rounds`` alternations, medians);
2. serves evalhub with gunicorn (``--workers`` sync workers) and the bare page (bench/bare.py) with the same
   number of workers, both on this machine;
3. for each page and user, alternates short bursts against the bare page and the page (``--users``
   concurrent keep-alive connections from client threads; half the ``--seconds`` each, in four rounds), so
   both see the same machine at the same moments, and prints req/s, p50 and p95, the statements, and the
   page's share of the bare page's throughput.

The client runs on the same two cores as the servers. Its cost per request is the same on both sides, so
it lowers both sides' absolute numbers alike but pulls each share towards 100 %: a share printed here is
somewhat higher than the page's share of server time alone, which the in-process columns give. Finally it
prints each page's growth from the first scale to the last: the change in req/s, and the change in its
share of the bare page (each share measured interleaved, so what else the machine did between the two
scales cancels out); and, the figure for the growth target, each page served in one process from both
databases at once and timed on each alternately (``--growth-rounds`` requests each, medians). The machine's
load average is printed before each user's table.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    ("dashboard", "/"),
    ("screening queue", "/screening/queue?year=2025"),
    ("credit ratings", "/credit"),
    ("engagement list", "/engagements"),
    ("engagement list, page 5", "/engagements?page=5"),
    ("engagement list, overdue", "/engagements?overdue=1"),
    ("firm list", "/firms"),
    ("expert list", "/experts"),
    ("engagement detail", "/engagements/{engagement}"),
    ("API engagements", "/api/v1/engagements"),
    ("API screening queue", "/api/v1/screening/queue?year=2025"),
]
USERS = [("bz.admin", "prefecture admin (巴州)"), ("region.admin", "region admin (自治区)")]


def fresh_database(base_url: str, scale: float) -> str:
    url = sa.engine.make_url(base_url)
    name = f"{url.database}_{str(scale).replace('.', '_')}x"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "EVALHUB_DATABASE_URL": url, "EVALHUB_SECRET_KEY": "bench-secret-key-0123456789",
            "EVALHUB_COOKIE_SECURE": "0", "EVALHUB_LOG_JSON": "0", "PYTHONPATH": str(ROOT)}


def build(url: str, scale: float) -> tuple[dict[str, int], float, int]:
    """Migrate and fill; returns rows per table, seconds, and a 巴州 engagement of 2025 (the detail page's)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=_env(url),
                   check=True, capture_output=True)
    os.environ.update(_env(url))
    from evalhub import create_app
    from evalhub.extensions import db
    from bench import province

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
    with app.app_context():
        written = province.build(scale)
        from evalhub.procurement.models import Engagement, EngagementState
        # the detail page's engagement: the same kind at every scale (a report sent back, so with its contract,
        # panels, reviews and letters), the first by reference
        engagement = db.session.execute(sa.select(Engagement.id).where(
            Engagement.reference.like("652800-2025-%"), Engagement.firm_id.is_not(None),
            Engagement.state == EngagementState.REPORT_RETURNED).order_by(Engagement.reference).limit(1)).scalar_one()
        db.session.remove()
        db.engine.dispose()
    return written, time.perf_counter() - started, engagement


def in_process(url: str, engagement: int, rounds: int) -> dict[tuple[str, str], tuple[int, float, float]]:
    """Per (user, page): SQL statements, and the median milliseconds of the page and of the bare page served
    in this process by Flask's test client, alternating one request of each ``rounds`` times — the server's
    own cost without the HTTP client and gunicorn, a second view on the share."""
    from bench.bare import make_app
    from evalhub import create_app
    from evalhub.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
    bare = make_app(url)
    bare_client = bare.test_client()
    out = {}
    # No application context around the requests: each request gets its own (an empty session, as on a
    # server), so what a page reads on every request (the user, the bureau tree, settings) is counted too.
    for username, _ in USERS:
        client = app.test_client()
        assert client.post("/login", data={"username": username, "password": "Bench-password-1"}).status_code == 302
        token = client.post("/api/v1/tokens", json={"username": username, "password": "Bench-password-1"}).json["token"]
        for _, path in PAGES:
            path = path.format(engagement=engagement)
            headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {}
            client.get(path, headers=headers)
            seen = []
            listener = lambda *a: seen.append(1)  # noqa: E731
            with app.app_context():
                engine = db.engine
            sa.event.listen(engine, "before_cursor_execute", listener)
            response = client.get(path, headers=headers)
            sa.event.remove(engine, "before_cursor_execute", listener)
            assert response.status_code == 200, (username, path, response.status_code)
            page_ms, bare_ms = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                bare_client.get("/")
                t1 = time.perf_counter()
                client.get(path, headers=headers)
                bare_ms.append(t1 - t0)
                page_ms.append(time.perf_counter() - t1)
            out[(username, path)] = (len(seen), statistics.median(page_ms) * 1000, statistics.median(bare_ms) * 1000)
    with app.app_context():
        db.engine.dispose()
    with bare.app_context():
        bare.extensions["bare_db"].engine.dispose()
    return out


def growth_in_process(first: tuple[str, int], last: tuple[str, int], rounds: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (user, page): the median milliseconds of the page on the first scale's database and on the last's,
    served in this process and timed alternately (``rounds`` requests each, the order swapped every round), so
    that whatever else the machine does falls on both alike: the growth the data adds, without the minutes
    between the two scales' HTTP runs and without the client."""
    from evalhub import create_app
    from evalhub.extensions import db

    apps = [create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False}) for url, _ in (first, last)]
    engagements = [first[1], last[1]]
    out = {}
    for username, _ in USERS:
        clients, headers = [], []
        for app in apps:
            client = app.test_client()
            assert client.post("/login", data={"username": username, "password": "Bench-password-1"}).status_code == 302
            token = client.post("/api/v1/tokens", json={"username": username, "password": "Bench-password-1"}).json["token"]
            clients.append(client)
            headers.append({"Authorization": f"Bearer {token}"})
        for name, template in PAGES:
            paths = [template.format(engagement=e) for e in engagements]
            def get(i: int) -> float:
                t0 = time.perf_counter()
                response = clients[i].get(paths[i], headers=headers[i] if paths[i].startswith("/api/") else {})
                assert response.status_code == 200, (username, paths[i], response.status_code)
                return time.perf_counter() - t0
            for i in (0, 1, 0, 1):
                get(i)
            times: list[list[float]] = [[], []]
            for r in range(rounds):
                for i in ((0, 1) if r % 2 else (1, 0)):
                    times[i].append(get(i))
            out[(username, name)] = (statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000)
    for app in apps:
        with app.app_context():
            db.engine.dispose()
    return out


def serve(url: str, workers: int) -> list[subprocess.Popen]:
    import gunicorn

    # two servers at once: gunicorn 27's control socket (one default path) is not needed and would clash
    control = ["--no-control-socket"] if int(gunicorn.__version__.split(".")[0]) >= 27 else []
    procs = []
    for module, port in (("wsgi:app", 5101), ("bench.bare:app", 5102)):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--keep-alive", "30",
             "--log-level", "warning", *control, module], cwd=ROOT, env=_env(url)))
    for port, path in ((5101, "/healthz"), (5102, "/")):
        for _ in range(120):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"server on {port} did not start")
    return procs


def login(username: str) -> tuple[str, str]:
    """(session cookie, API token) for the user, through the real login form."""
    conn = http.client.HTTPConnection("127.0.0.1", 5101, timeout=30)
    conn.request("GET", "/login")
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    body = urlencode({"username": username, "password": "Bench-password-1", **({"csrf_token": csrf.group(1)} if csrf else {})})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    response = conn.getresponse()
    response.read()
    assert response.status == 302, f"login as {username}: {response.status}"
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    conn.request("POST", "/api/v1/tokens", f'{{"username": "{username}", "password": "Bench-password-1"}}',
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    token = re.search(r'"token":\s*"([^"]+)"', response.read().decode()).group(1)
    return cookie, token


def burst(port: int, path: str, headers: dict, users: int, seconds: float) -> tuple[int, list[float], int]:
    """``users`` keep-alive connections requesting ``path`` for ``seconds``: (requests, latencies, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=run) for _ in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), latencies, errors[0]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else float("nan"))


def measure(args, scale: float) -> dict:
    url = fresh_database(args.database_url, scale)
    written, seconds, engagement = build(url, scale)
    print(f"\n## scale {scale}×: {written.get('firm', 0):,} firms, {written.get('expert', 0):,} experts, "
          f"{written.get('engagement', 0):,} engagements, {sum(written.values()):,} rows in {seconds:.0f} s ({url.rsplit('/', 1)[1]})")
    counts = in_process(url, engagement, args.rounds)
    procs = serve(url, args.workers)
    results = {"_db": (url, engagement)}
    try:
        for username, label in USERS:
            cookie, token = login(username)
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"\n### {label}, {args.users} concurrent connections, {args.workers} gunicorn workers each side "
                  f"(load average before: {load} on {os.cpu_count()} cores)\n")
            print("| page | SQL statements | req/s | p50 ms | p95 ms | bare req/s | share of bare | errors "
                  "| in-process ms (bare) | in-process share |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for name, path in PAGES:
                path = path.format(engagement=engagement)
                headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {"Cookie": cookie}
                burst(5101, path, headers, args.users, 1.0)  # warm every worker (screening index, settings)
                page_n, page_lat, page_err, bare_n, bare_time, page_time = 0, [], 0, 0, 0.0, 0.0
                for _ in range(4):
                    slot = args.seconds / 8
                    t0 = time.perf_counter()
                    n, _, _ = burst(5102, "/", {}, args.users, slot)
                    bare_n, bare_time = bare_n + n, bare_time + time.perf_counter() - t0
                    t0 = time.perf_counter()
                    n, lat, err = burst(5101, path, headers, args.users, slot)
                    page_n, page_lat, page_err = page_n + n, page_lat + lat, page_err + err
                    page_time += time.perf_counter() - t0
                rps, bare_rps = page_n / page_time, bare_n / bare_time
                statements_n, page_ms, bare_ms = counts[(username, path)]
                results[(username, name)] = (rps, rps / bare_rps, bare_ms / page_ms)
                print(f"| {name} | {statements_n} | {rps:.1f} | {_pct(page_lat, 50) * 1000:.0f} | "
                      f"{_pct(page_lat, 95) * 1000:.0f} | {bare_rps:.0f} | {rps / bare_rps:.1%} | {page_err} | "
                      f"{page_ms:.1f} ({bare_ms:.1f}) | {bare_ms / page_ms:.1%} |", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url", help="a PostgreSQL URL; databases <name>_<scale>x are created beside it")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per page: half on the bare page, half on the page")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=30, help="in-process requests per page and user")
    parser.add_argument("--growth-rounds", type=int, default=60,
                        help="in-process requests per page, user and scale for the interleaved growth table")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("bench/web.py measures on PostgreSQL (the production database)")
    runs = {scale: measure(args, scale) for scale in args.scales}
    if len(runs) > 1:
        first, last = args.scales[0], args.scales[-1]
        # Two figures per page. The change in req/s compares two moments minutes apart, so whatever else the
        # machine did in between moves it (the bare page's own req/s moves ±20 % between rounds); the
        # change in the share of the bare page compares two ratios each measured interleaved with the same
        # bare page (whose cost does not depend on the data size), so it is the growth the page itself adds.
        print(f"\n### growth: {last:g}× against {first:g}× (a page that slows down has a negative change)\n")
        print(f"| user | page | req/s {first:g}× | req/s {last:g}× | change | share {first:g}× | share {last:g}× "
              "| change in share | change in in-process share |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key, figures in runs[first].items():
            if key == "_db":  # the database and engagement, for the interleaved table below
                continue
            (rps, share, inner), (after, after_share, after_inner) = figures, runs[last][key]
            print(f"| {key[0]} | {key[1]} | {rps:.1f} | {after:.1f} | {(after - rps) / rps:+.0%} | {share:.1%} | "
                  f"{after_share:.1%} | {(after_share - share) / share:+.0%} | {(after_inner - inner) / inner:+.0%} |")
        # The figure for the growth target: both databases served by one process, each page timed on each
        # alternately, many times — no minutes between the two, no client, no shares of shares.
        timed = growth_in_process(runs[first]["_db"], runs[last]["_db"], args.growth_rounds)
        print(f"\n### growth in-process, interleaved: {last:g}× against {first:g}×, median of {args.growth_rounds} "
              "requests each, alternating (a page that slows down has a positive change)\n")
        print(f"| user | page | ms {first:g}× | ms {last:g}× | change |")
        print("|---|---|---|---|---|")
        for (user, page), (before, after) in timed.items():
            print(f"| {user} | {page} | {before:.1f} | {after:.1f} | {(after - before) / before:+.1%} |")


if __name__ == "__main__":
    main()
