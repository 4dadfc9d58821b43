"""mlflowfs(1), THE TREE, plots: history/<key>.svg (one run's metric) and
experiments/E/.plots/<key>.svg (that metric for every active run), drawn on
read.

Points are logged with the real MLflow client; each SVG read through the
mount is parsed with xml.etree (well-formed, root <svg> with a viewBox, one
polyline per run with the documented number of vertices, x never going back
with the step), its stat size checked against the bytes read, and one is
drawn by headless Chromium and its pixels checked.
"""
import errno
import math
import os
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from conftest import daemon_has_asan, seen, sh, write_file
from helpers_tree import new_experiment
from helpers_writes import refused

SVG = "{http://www.w3.org/2000/svg}"
# mlflowfs(1): the plot area's pixel columns, and where a line is drawn by them.
COLUMNS = 720
T0 = 1_700_000_000_000


def log_points(client, run, key, values, start_step=0):
    """values[i] at step start_step + i, 1000 points a call."""
    from mlflow.entities import Metric

    ms = [Metric(key, v, T0 + i, start_step + i) for i, v in enumerate(values)]
    for i in range(0, len(ms), 1000):
        client.log_batch(run, metrics=ms[i:i + 1000])


def parse(path):
    """The SVG at path, read once: (root element, bytes), its size checked
    against stat's."""
    data = Path(path).read_bytes()
    assert os.stat(path).st_size == len(data), path
    root = ET.fromstring(data)
    assert root.tag == SVG + "svg"
    assert len(root.get("viewBox").split()) == 4
    return root, data


def polylines(root):
    """Each polyline's vertices as [(x, y)]."""
    out = []
    for p in root.iter(SVG + "polyline"):
        pts = [tuple(float(c) for c in v.split(",")) for v in p.get("points").split()]
        out.append(pts)
    return out


def monotonic(pts):
    return all(a[0] <= b[0] for a, b in zip(pts, pts[1:]))


def expected_vertices(steps_values):
    """mlflowfs(1)'s count of a run's vertices: every finite point up to
    COLUMNS of them; beyond, per pixel column one vertex for a lone point,
    else two (its lowest and highest value)."""
    finite = [(s, v) for s, v in steps_values if math.isfinite(v)]
    if len(finite) <= COLUMNS:
        return len(finite)
    lo = float(min(s for s, _ in finite))
    hi = float(max(s for s, _ in finite))
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    per = {}
    for s, _ in finite:
        c = min(max(math.floor((float(s) - lo) / (hi - lo) * (COLUMNS - 1)), 0), COLUMNS - 1)
        per[c] = per.get(c, 0) + 1
    return sum(1 if n == 1 else 2 for n in per.values())


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


# ---- history/<key>.svg ----------------------------------------------------------


def test_history_svg_has_a_vertex_per_point_listed_next_to_its_history(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    values = [1 / (1 + s) for s in range(50)]
    log_points(client, run, "loss", values)
    client.log_metric(run, "train/acc", -0.5, step=3)
    hist = mount.run("E", "r") / "history"
    assert sorted(os.listdir(hist)) == ["loss", "loss.svg", "train"]
    assert sorted(os.listdir(hist / "train")) == ["acc", "acc.svg"]
    root, data = parse(hist / "loss.svg")
    assert root.findtext(SVG + "title") == "loss"
    (line,) = polylines(root)
    assert len(line) == 50
    assert monotonic(line)
    # Falling values rise on the page (SVG's y grows downwards).
    assert all(a[1] <= b[1] for a, b in zip(line, line[1:]))
    assert data.endswith(b"</svg>\n")
    # One point, negative: one vertex, and a dot to see it by.
    root, _ = parse(hist / "train" / "acc.svg")
    assert [len(p) for p in polylines(root)] == [1]
    assert len(list(root.iter(SVG + "circle"))) == 1
    assert "-0.5" in texts(root)


def test_history_svg_draws_long_histories_by_pixel_column(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    # Uneven steps, a huge range, NaN and infinities among them.
    pts = [(-10**12 + s * s * 7919, math.sin(s / 50) * 100) for s in range(3000)]
    pts[10] = (pts[10][0], float("nan"))
    pts[20] = (pts[20][0], float("inf"))
    pts[30] = (pts[30][0], float("-inf"))
    from mlflow.entities import Metric

    ms = [Metric("wave", v, T0 + i, s) for i, (s, v) in enumerate(pts)]
    for i in range(0, len(ms), 1000):
        client.log_batch(run, metrics=ms[i:i + 1000])
    root, data = parse(mount.run("E", "r") / "history" / "wave.svg")
    (line,) = polylines(root)
    assert len(line) == expected_vertices(pts)
    assert len(line) <= 2 * COLUMNS
    assert monotonic(line)
    assert "3 non-finite points not drawn" in texts(root)
    assert len(data) < 40_000


def test_metric_key_ending_in_svg_keeps_its_name(mount, client):
    # mlflowfs(1): a key's own name wins; its plot is <key>.svg after it.
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_metric(run, "a", 1.0, step=0, timestamp=T0)
    client.log_metric(run, "a.svg", 2.0, step=0, timestamp=T0)
    hist = mount.run("E", "r") / "history"
    assert sorted(os.listdir(hist)) == ["a", "a.svg", "a.svg.svg"]
    assert (hist / "a.svg").read_text() == f"0 2 {T0}\n"
    root, _ = parse(hist / "a.svg.svg")
    assert root.findtext(SVG + "title") == "a.svg"
    assert sorted(os.listdir(mount.exp("E") / ".plots")) == ["a.svg", "a.svg.svg"]


def test_plots_follow_new_points_with_exact_sizes(mount, client, run_dir):
    for v in (0.5, 0.4, 0.3):
        sh(f"echo {v} >> {run_dir}/metrics/loss")
    svg = run_dir / "history" / "loss.svg"
    exp_svg = run_dir.parent / ".plots" / "loss.svg"
    assert [len(p) for p in polylines(parse(svg)[0])] == [3]
    assert [len(p) for p in polylines(parse(exp_svg)[0])] == [3]
    sh(f"echo 0.25 >> {run_dir}/metrics/loss")
    assert [len(p) for p in polylines(parse(svg)[0])] == [4]
    assert [len(p) for p in polylines(parse(exp_svg)[0])] == [4]
    # Another client's point, after the store's and the kernel's caches.
    run = (run_dir / "run_id").read_text().strip()
    client.log_metric(run, "loss", 12345.678, step=10)
    seen(mount, lambda: [len(p) for p in polylines(parse(svg)[0])] == [5])
    seen(mount, lambda: [len(p) for p in polylines(parse(exp_svg)[0])] == [5])


# ---- .plots/ ------------------------------------------------------------------


def test_plots_overlay_every_active_run_with_a_legend(mount, client):
    exp = new_experiment(client, mount, "E")
    runs = {}
    for i, name in enumerate(["alpha", "<a&b>", "gamma", "gone"]):
        runs[name] = client.create_run(exp, run_name=name).info.run_id
        log_points(client, runs[name], "loss", [i + 1 / (1 + s) for s in range(20 + i)])
    client.log_metric(runs["alpha"], "train/acc", 0.5)
    client.log_metric(runs["gamma"], "acc", 0.7)
    none = client.create_run(exp, run_name="none").info.run_id
    client.log_param(none, "p", "1")
    client.delete_run(runs["gone"])
    plots = mount.exp("E") / ".plots"
    seen(mount, lambda: "gone" not in os.listdir(mount.exp("E")))
    assert sorted(os.listdir(plots)) == ["acc.svg", "loss.svg", "train"]
    assert os.listdir(plots / "train") == ["acc.svg"]
    assert os.path.isdir(plots / "train")
    root, data = parse(plots / "loss.svg")
    lines = polylines(root)
    assert [len(p) for p in lines] == [20, 21, 22]  # oldest first, the deleted run left out
    assert all(monotonic(p) for p in lines)
    legend = texts(root)
    assert {"alpha", "<a&b>", "gamma"} <= set(legend) and "gone" not in legend
    assert b"&lt;a&amp;b&gt;" in data
    colours = [p.get("stroke") for p in root.iter(SVG + "polyline")]
    assert len(set(colours)) == 3
    # Every file under .plots/: its stat size is what a read returns.
    for d, _, files in os.walk(plots):
        for f in files:
            parse(Path(d) / f)
    root, _ = parse(plots / "train" / "acc.svg")
    assert [len(p) for p in polylines(root)] == [1]
    assert root.findtext(SVG + "title") == "train/acc"


def test_plots_listing_is_every_metric_key_of_the_experiments_runs(mount, client):
    exp = new_experiment(client, mount, "E")
    keys = {"a": 1.0, "b/c": 2.0, "b/d/e": 3.0, ".dot": 4.0}
    run = client.create_run(exp, run_name="r").info.run_id
    for k, v in keys.items():
        client.log_metric(run, k, v)
    other = client.create_run(exp, run_name="s").info.run_id
    client.log_metric(other, "z", 1.0)
    plots = mount.exp("E") / ".plots"
    assert sorted(os.listdir(plots)) == ["%2Edot.svg", "a.svg", "b", "z.svg"]
    assert sorted(os.listdir(plots / "b")) == ["c.svg", "d"]
    assert os.listdir(plots / "b" / "d") == ["e.svg"]
    assert parse(plots / "%2Edot.svg")[0].findtext(SVG + "title") == ".dot"
    for missing in ("nope.svg", "a", "b.svg"):
        assert not os.path.exists(plots / missing), missing


def test_plots_are_read_only(mount, client, run_dir):
    sh(f"echo 0.5 >> {run_dir}/metrics/loss")
    svg = run_dir / "history" / "loss.svg"
    plots = run_dir.parent / ".plots"
    refused(mount, errno.EACCES, write_file, svg, "x", path=svg, reason="read-only")
    refused(mount, errno.EACCES, write_file, plots / "loss.svg", "x", path=plots / "loss.svg",
            reason="read-only")
    refused(mount, errno.EACCES, write_file, plots / "new.svg", "x", path=plots / "new.svg",
            reason="read-only")
    refused(mount, errno.EACCES, os.mkdir, plots / "d", path=plots / "d", reason="read-only")
    refused(mount, errno.EPERM, os.unlink, plots / "loss.svg", path=plots / "loss.svg",
            reason="cannot be removed")
    refused(mount, errno.EPERM, os.unlink, svg, path=svg, reason="cannot delete")
    assert sorted(os.listdir(plots)) == ["loss.svg"]


@pytest.mark.local_only("the remote backend holds a history's pages itself; "
                        "this measures the plot's own memory")
def test_a_million_points_plot_in_flat_memory(mount, run_dir, tmp_path):
    src = tmp_path / "big.txt"
    with open(src, "w") as f:
        for s in range(1_000_000):
            f.write(f"{s * 3} {math.sin(s / 5000) * (s % 89)} {T0 + s}\n")
    shutil.copyfile(src, run_dir / "metrics" / "big")
    status = Path(f"/proc/{mount.proc.pid}/status")

    def hwm_kib():
        line = [x for x in status.read_text().splitlines() if x.startswith("VmHWM")][0]
        return int(line.split()[1])

    before = hwm_kib()
    start = time.monotonic()
    root, data = parse(run_dir / "history" / "big.svg")
    took = time.monotonic() - start
    (line,) = polylines(root)
    assert len(line) == 2 * (COLUMNS - 1) + 1  # the last step alone in its column
    assert len(data) < 40_000
    grown = hwm_kib() - before
    print(f"1e6 points: stat+read {took:.2f} s, {len(data)} bytes, peak RSS +{grown} KiB")
    # The points alone would be 24 MB held; the history text 30 MB.  (The
    # sanitizer's shadow memory and quarantine make the figure meaningless.)
    if not daemon_has_asan():
        assert grown < 8 * 1024


# ---- drawn by a browser ----------------------------------------------------------


def png_pixels(data):
    """(width, height, rows of RGB(A) byte rows) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def test_chromium_draws_the_plot(mount, client, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    log_points(client, run, "loss", [math.exp(-s / 10) for s in range(60)])
    src = mount.run("E", "r") / "history" / "loss.svg"
    root, data = parse(src)
    colour = next(root.iter(SVG + "polyline")).get("stroke")
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    # A copy outside the mount: the browser's sandboxed reader need not
    # know FUSE.
    copy = tmp_path / "loss.svg"
    copy.write_bytes(data)
    png = tmp_path / "loss.png"
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        f"--screenshot={png}", "--window-size=900,600", copy.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert png.exists(), r.stderr
    w, h, bpp, rows = png_pixels(png.read_bytes())
    colours = {}
    for row in rows:
        for x in range(0, w * bpp, bpp):
            px = tuple(row[x:x + 3])
            colours[px] = colours.get(px, 0) + 1
    assert len(colours) > 10, "the page is blank"
    near = sum(n for px, n in colours.items()
               if all(abs(a - b) <= 12 for a, b in zip(px, want)))
    assert near > 100, f"the line's colour {colour} is hardly drawn ({near} pixels)"
