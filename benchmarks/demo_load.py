"""Load test of the demo: N concurrent detection requests of 30 s calls against a local server.

    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/demo_load.py --clients 20 --seconds 30

Starts demo/app.py on a free 127.0.0.1 port, builds a 30 s call from real shared-data speech,
sends the requests at once from N threads through gradio_client, and reports how many were
answered, the latency distribution and the server's resident memory (peak VmHWM from /proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicefake.audio.io import load_audio, write_audio  # noqa: E402
from voicefake.data.manifests import data_root, read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_call(seconds: float, folder: Path) -> Path:
    root = data_root()
    rows = [r for r in read_manifest(root / "manifest.csv") if "/test-other/" in r.path]
    pieces, total = [], 0
    for row in rows:
        wav = load_audio(root / row.path, 16000)
        pieces.append(wav)
        total += wav.size
        if total >= seconds * 16000:
            break
    call = np.concatenate(pieces)[: int(seconds * 16000)]
    return write_audio(folder / "call30.wav", call, 16000, force=True)


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    folder = Path(tempfile.mkdtemp(prefix="voicefake-load-"))
    call = make_call(args.seconds, folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(folder / "gradio")}
    server = subprocess.Popen([sys.executable, str(ROOT / "demo" / "app.py"), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        idle = memory_kb(server.pid)

        def one(_: int) -> float:
            start = time.perf_counter()
            Client(url, verbose=False).predict([handle_file(str(call))], 0.5, None, True, api_name="/analyze")
            return time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda i: _safe(one, i), range(args.clients)))
        wall = time.perf_counter() - start
        answered = [r for r in results if isinstance(r, float)]
        peak = memory_kb(server.pid)
        print("| clients | answered | wall (s) | latency median / max (s) | server RSS idle -> peak (MB) |")
        print("|---|---|---|---|---|")
        print(f"| {args.clients} x {args.seconds:.0f} s calls | {len(answered)}/{args.clients} | {wall:.1f} | "
              f"{statistics.median(answered):.1f} / {max(answered):.1f} | "
              f"{idle['VmRSS'] / 1024:.0f} -> {peak['VmHWM'] / 1024:.0f} |")
        for r in results:
            if not isinstance(r, float):
                print("error:", r)
    finally:
        server.terminate()
        server.wait(10)


def _safe(fn, arg):  # type: ignore[no-untyped-def]
    try:
        return fn(arg)
    except Exception as err:  # noqa: BLE001 - a benchmark reports every failure kind
        return f"{type(err).__name__}: {err}"


if __name__ == "__main__":
    main()
