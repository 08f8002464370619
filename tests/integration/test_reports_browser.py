"""Reports as people open them: a real headless Chromium loads each HTML file from disk with
networking disabled; every figure must have rendered (plot marks present), with no console
error and no network request. A screenshot of each page is kept in test-artifacts/ (or
$OPSKIT_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opskit.cli.main import main
from opskit.testing.browser import find_chromium, open_page
from opskit.testing.engine import skip_unless_ci
from tests.unit._runs import CARD, write_run

pytestmark = pytest.mark.slow

READY = ("window.opskitRendered !== undefined && (window.opskitErrors.length > 0 || "
         "window.opskitRendered === document.querySelectorAll('.opskit-fig').length)")
PROBE = """(() => { const figs = [...document.querySelectorAll('.opskit-fig')];
  const marks = f => f.querySelectorAll('.scatterlayer .trace path, .scatterlayer .trace .point,'
    + ' .barlayer .point, .heatmaplayer image, .shapelayer path, .textpoint').length;
  return {declared: Number(document.querySelector('meta[name=opskit-figures]').content),
          figures: figs.map(f => ({id: f.id, rendered: f.dataset.rendered === '1',
                                   svg: !!f.querySelector('svg.main-svg'), marks: marks(f)})),
          errors: window.opskitErrors}; })()"""


def artifacts() -> Path:
    root = Path(os.environ.get("OPSKIT_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def assert_renders(page: Path, name: str, expect_figures: int | None = None) -> dict:
    if find_chromium() is None:
        skip_unless_ci("needs Chromium (apt-get install chromium; scripts/setup-host.sh does)")
    visit = open_page(page, PROBE, READY)
    (artifacts() / f"{name}.png").write_bytes(visit.screenshot)
    res = visit.result
    assert visit.network_requests == [], visit.network_requests
    assert visit.console_errors == [] and res["errors"] == [], (visit.console_errors, res["errors"])
    assert len(res["figures"]) == res["declared"] > 0
    if expect_figures is not None:
        assert res["declared"] == expect_figures
    for fig in res["figures"]:
        assert fig["rendered"] and fig["svg"] and fig["marks"] > 0, fig
    assert visit.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    return res


def cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSKIT_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "opskit.yaml").write_text(CARD)
    return tmp_path


def test_report_of_real_runs_renders_offline(project, capsys):
    import torch

    torch.set_num_threads(1)
    for name, seed in (("small-a", 0), ("small-b", 1)):
        assert cli(["train", "lenet", "--small", "--steps", "12", "--log-every", "3", "--batch-size", "16",
                    "--train-samples", "64", "--val-samples", "32", "--threads", "1", "--device", "cpu",
                    "--seed", str(seed), "--out", str(project / "runs" / name), "--progress", "none"]) == 0
    empty = project / "runs" / "starting"
    empty.mkdir()
    (empty / "run_card.json").write_text(json.dumps({"model": "lenet", "device": "cpu"}))
    out = project / "report.html"
    assert cli(["report", "small-a", "small-b", "starting", "--baseline", "small-a", "-o", str(out), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    res = assert_renders(out, "report-runs", made["figures"])
    assert {f["id"] for f in res["figures"]} >= {"fig-small-b-system", "fig-compare-compare_eval_accuracy"}


def test_report_of_many_runs_renders(project):
    for i in range(40):
        write_run(project / "runs", f"r{i:02d}", accuracies=(0.2 + i / 100, 0.3 + i / 80), system=True)
    out = project / "many.html"
    assert cli(["report", *[f"r{i:02d}" for i in range(40)], "--no-png", "-o", str(out)]) == 0
    assert_renders(out, "report-40-runs", 2)


def test_data_check_page_renders(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,c\n" + "".join(f"{i},{'' if i % 3 else i},{'x' if i % 5 else ''}\n" for i in range(60)))
    assert cli(["data", "check", str(f), "--html", str(tmp_path / "d.html")]) == 0
    assert_renders(tmp_path / "d.html", "data-check", 2)


def test_the_browser_check_sees_requests_errors_and_missing_figures(tmp_path):
    """The checks above can fail: a page that asks for a remote image, logs an error and has a
    figure that never draws is caught on each count (the request goes nowhere: no network)."""
    if find_chromium() is None:
        skip_unless_ci("needs Chromium (apt-get install chromium; scripts/setup-host.sh does)")
    page = tmp_path / "bad.html"
    page.write_text('<html><head><meta name="opskit-figures" content="1"></head><body>'
                    '<div class="opskit-fig" id="f"></div><img src="http://192.0.2.1/x.png">'
                    "<script>window.opskitRendered=0;window.opskitErrors=[];console.error('boom');"
                    "</script></body></html>")
    visit = open_page(page, PROBE, "document.readyState === 'complete'", timeout=20)
    assert visit.network_requests == ["http://192.0.2.1/x.png"]
    assert any("boom" in e for e in visit.console_errors)
    assert visit.result["figures"] == [{"id": "f", "rendered": False, "svg": False, "marks": 0}]


FLEET = {"driver_version": "590.48.01", "cuda_version": "13.1", "gpus": [
    {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": 61, "utilization.gpu": 97,
     "memory.used": 70000, "memory.total": 81559},
    {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": 31, "utilization.gpu": 0,
     "memory.used": 0, "memory.total": 81559},
    {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": 92, "utilization.gpu": 100,
     "memory.used": 60000, "memory.total": 81559},
    {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": "[GPU requires reset]",
     "utilization.gpu": "[GPU requires reset]", "memory.used": 0, "memory.total": 81559}],
    "processes": [{"gpu": 0, "pid": 4242, "process_name": "python", "used_gpu_memory": 69000}]}


def test_status_html_waffle_of_gpus(tmp_path, monkeypatch, capsys):
    """`opskit status --html` on this machine, its nvidia-smi the fake one of opskit.testing
    (real local transport, real parsing): one square per GPU, each state in its colour."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "nvidia-smi").symlink_to(Path(__file__).resolve().parents[2] / "opskit/testing/bin/nvidia-smi")
    (tmp_path / "gpus.json").write_text(json.dumps(FLEET))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("OPSKIT_FAKE_NVIDIA_SMI", str(tmp_path / "gpus.json"))
    out = tmp_path / "status.html"
    assert cli(["status", "--html", str(out)]) == 1  # a faulty GPU is a problem: exit 1
    assert "GPU requires reset" in capsys.readouterr().out
    html = out.read_text()
    assert "1 busy, 1 idle, 1 too hot, 1 faulty" in html
    res = assert_renders(out, "status-waffle", 1)
    assert res["figures"][0]["marks"] == 4  # one square per GPU


def test_layers_html_venn_of_two_images(docker_client, base_image, tmp_path, capsys):
    import io

    tags = ["opskit-reports-venn:a", "opskit-reports-venn:b"]
    try:
        for tag, extra in zip(tags, ("RUN echo a > /a", "RUN echo b > /b\nRUN echo c > /c"), strict=True):
            dockerfile = f"FROM {base_image}\nRUN echo shared > /shared\n{extra}\n"
            docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                       network_mode="none")
        out = tmp_path / "layers.html"
        assert cli(["image", "layers", tags[0], "--compare", tags[1], "--html", str(out)]) == 0
        capsys.readouterr()
        html = out.read_text()
        base_layers = len(docker_client.images.get(base_image).attrs["RootFS"]["Layers"])
        assert f"{base_layers + 1} layers shared, 1 only in {tags[0]}, 2 only in {tags[1]}" in html
        assert_renders(out, "layers-venn", 1)
    finally:
        for tag in tags:
            with __import__("contextlib").suppress(Exception):
                docker_client.images.remove(tag, force=True)


def test_layers_html_venn_of_two_hosts(gpu_hosts, docker_client, base_image, monkeypatch, tmp_path, capsys):
    """`opskit image layers IMAGE --host A --host B --html`: which layers two real hosts' engines
    (Docker-in-Docker over SSH) hold, checked against what `docker image inspect` says there."""
    import io

    from opskit.images.shiptar import chain_ids
    from tests.integration._helpers import point_opskit_at

    bed = point_opskit_at(gpu_hosts, monkeypatch, tmp_path)
    tag = "opskit-reports-venn:hosts"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {base_image}\nRUN echo h > /h\n".encode()),
                               tag=tag, rm=True, network_mode="none")
    try:
        a, b = bed.hosts[0], bed.hosts[1]
        base_there = b.exec(["docker", "image", "inspect", base_image], user="opskit")[0] == 0
        assert cli(["ship", tag, "--host", a.name]) == 0
        assert cli(["ship", base_image, "--host", b.name]) == 0  # b holds the lower layer
        out = tmp_path / "hosts.html"
        assert cli(["image", "layers", tag, "--host", a.name, "--host", b.name, "--html", str(out)]) == 0
        capsys.readouterr()
        mine = chain_ids(docker_client.images.get(tag).attrs["RootFS"]["Layers"])
        held = []
        for host in (a, b):
            ids = host.exec(["docker", "image", "ls", "-aq", "--no-trunc"], user="opskit")[1].split()
            chains = set()
            for i in ids:
                layers = json.loads(host.exec(["docker", "image", "inspect", "--format",
                                               "{{json .RootFS.Layers}}", i], user="opskit")[1])
                chains.update(chain_ids(layers))
            held.append({k for k, c in enumerate(mine) if c in chains})
        assert held[0] == set(range(len(mine))) and len(held[0] & held[1]) >= 1
        both, only_b = len(held[0] & held[1]), len(held[1] - held[0])
        assert f"{both} layers shared, {len(mine) - both} only in {a.name}, {only_b} only in {b.name}" in out.read_text()
        assert_renders(out, "layers-venn-hosts", 1)
    finally:
        docker_client.images.remove(tag, force=True)
        bed.hosts[0].exec(["docker", "image", "rm", "-f", tag], user="opskit")
        if not base_there:  # leave the hosts as they were
            bed.hosts[1].exec(["docker", "image", "rm", "-f", base_image], user="opskit")
