"""Layers from history + RootFS (captured from Docker 20.10 for an image built by opskit)."""

from __future__ import annotations

from opskit.images.layers import (
    ImageLayers,
    compare,
    docker_size,
    instruction_of,
    match_layers,
    short_instruction,
)


def _h(i: str, created_by: str, size: int, comment: str = "") -> dict:
    return {"Id": i, "CreatedBy": created_by, "Size": size, "Comment": comment, "Created": 1}


# `docker history` of opskit-buildtest-tiny:dev (newest first), ids shortened.
HISTORY = [
    _h("sha256:bfe7", '/bin/sh -c #(nop)  LABEL org.opskit.version=0.1.0', 0),
    _h("sha256:7c0b", '/bin/sh -c #(nop)  ENTRYPOINT ["python" "-m" "opskit.train"]', 0),
    _h("sha256:209c", "/bin/sh -c #(nop) COPY dir:0438f379 in /app/test ", 387),
    _h("sha256:ddaa", "/bin/sh -c #(nop) COPY dir:61a556e2 in /app/src ", 1615),
    _h("sha256:358e", "/bin/sh -c #(nop) WORKDIR /app", 0),
    _h("sha256:cd96", "/bin/sh -c #(nop) COPY dir:32453602 in /opt/opskit ", 208613),
    _h("sha256:cb9a", "/bin/sh -c #(nop)  ENV PATH=/opt/venv/bin:/usr/bin", 0),
    _h("sha256:5b57", "/bin/sh -c #(nop) COPY dir:e1ccd295 in /opt/venv ", 878683001),
    _h("sha256:37d7", '|1 SYSTEM_PACKAGES= /bin/sh -c if [ -n "$SYSTEM_PACKAGES" ]; then apt-get update; fi', 0),
    _h("sha256:66c7", "/bin/sh -c #(nop)  ARG SYSTEM_PACKAGES=", 0),
    _h("sha256:9e42", "", 169452486, "Imported from -"),
]
DIFF_IDS = ["sha256:1b6e", "sha256:09d4", "sha256:d4fa", "sha256:6267", "sha256:42f1", "sha256:81ce"]
# len(RootFS.Layers) of each step's image, as the engine reports it.
COUNTS = {"sha256:bfe7": 6, "sha256:7c0b": 6, "sha256:209c": 6, "sha256:ddaa": 5, "sha256:358e": 4,
          "sha256:cd96": 3, "sha256:cb9a": 2, "sha256:5b57": 2, "sha256:37d7": 1, "sha256:66c7": 1,
          "sha256:9e42": 1}


def test_instruction_text() -> None:
    assert instruction_of("/bin/sh -c #(nop) COPY dir:ab in /app ") == "COPY dir:ab in /app"
    assert instruction_of("/bin/sh -c #(nop)  ENV A=1") == "ENV A=1"
    assert instruction_of("/bin/sh -c apt-get update") == "RUN apt-get update"
    assert instruction_of("|2 A=1 B= /bin/sh -c make") == "RUN make"
    assert instruction_of("", "Imported from -") == "(Imported from -)"
    assert instruction_of("RUN /bin/sh -c pip install x # buildkit") == "RUN /bin/sh -c pip install x"


def test_docker_sizes_match_go_units() -> None:
    # docker history prints units.HumanSizeWithPrecision(size, 3)
    assert docker_size(0) == "0B"
    assert docker_size(387) == "387B"
    assert docker_size(1615) == "1.61kB"
    assert docker_size(208613) == "209kB"
    assert docker_size(878683001) == "879MB"
    assert docker_size(1048346076) == "1.05GB"
    assert docker_size(999999) == "1e+03kB"


def test_short_instruction() -> None:
    digest = "a" * 64
    assert short_instruction(f"COPY dir:{digest} in /x") == "COPY dir:aaaaaaaaaaaa… in /x"
    assert short_instruction("RUN a   \n   b") == "RUN a b"
    assert len(short_instruction("RUN " + "x" * 200, 40)) == 40


def test_layers_match_diff_ids_by_the_engine_counts() -> None:
    layers = match_layers(HISTORY, DIFF_IDS, COUNTS)
    assert [x.instruction.split()[0] for x in layers] == [
        "(Imported", "ARG", "RUN", "COPY", "ENV", "COPY", "WORKDIR", "COPY", "COPY", "ENTRYPOINT",
        "LABEL"]
    by_instruction = {x.instruction: x.diff_id for x in layers}
    assert by_instruction["(Imported from -)"] == "sha256:1b6e"
    assert by_instruction["COPY dir:e1ccd295 in /opt/venv"] == "sha256:09d4"
    assert by_instruction["WORKDIR /app"] == "sha256:6267"  # 0 bytes, yet a layer
    assert layers[2].diff_id is None  # the no-op RUN: 0 bytes and no layer
    assert [x.diff_id for x in layers if x.diff_id] == DIFF_IDS
    assert sum(x.size for x in layers) == 169452486 + 878683001 + 208613 + 1615 + 387


def test_pulled_base_with_missing_ids_uses_sizes_and_instructions() -> None:
    history = [
        _h("sha256:top", "/bin/sh -c #(nop)  CMD [\"python3\"]", 0),
        _h("<missing>", "/bin/sh -c pip install x", 1000),
        _h("<missing>", "/bin/sh -c #(nop)  ENV LANG=C", 0),
        _h("<missing>", "/bin/sh -c #(nop) WORKDIR /w", 0),
        _h("<missing>", "/bin/sh -c #(nop) ADD file:abc in / ", 5000),
    ]
    layers = match_layers(history, ["sha256:a", "sha256:b", "sha256:c"], {"sha256:top": 3})
    assert [x.diff_id for x in layers] == ["sha256:a", "sha256:b", None, "sha256:c", None]
    assert layers[0].history_id is None and layers[-1].history_id == "sha256:top"


def _image(diff_ids: list[str], sizes: list[int]) -> ImageLayers:
    history = [_h(f"sha256:{d}", f"/bin/sh -c #(nop) COPY file:{d} in / ", s)
               for d, s in zip(diff_ids, sizes, strict=True)][::-1]
    counts = {f"sha256:{d}": i + 1 for i, d in enumerate(diff_ids)}
    layers = match_layers(history, diff_ids, counts)
    return ImageLayers("sha256:x", (), sum(sizes), tuple(layers), tuple(diff_ids))


def test_compare_shares_only_a_common_prefix() -> None:
    a = _image(["base", "deps", "src1", "test"], [100, 50, 3, 1])
    b = _image(["base", "deps", "src2", "test"], [100, 50, 4, 1])
    cmp = compare(a, b)
    assert cmp.shared == 2 and cmp.shared_bytes == 150
    # "test" has the same diff but a different parent: not shared by the engine.
    assert [x.diff_id for x in cmp.only_image] == ["src1", "test"]
    assert cmp.only_image_bytes == 4 and cmp.only_other_bytes == 5
    d = cmp.to_dict()
    assert d["differing_bytes"] == 9 and d["shared_layers"] == 2


def test_compare_with_itself_shares_everything() -> None:
    a = _image(["base", "deps"], [100, 50])
    cmp = compare(a, a)
    assert cmp.shared == 2 and cmp.only_image_bytes == cmp.only_other_bytes == 0


def test_the_image_id_is_named_by_store():
    from opskit.images.layers import ImageLayers

    legacy = ImageLayers("sha256:a", (), 0, (), (), "legacy")
    containerd = ImageLayers("sha256:b", (), 0, (), (), "containerd")
    assert "config digest" in legacy.to_dict()["id_is"] and legacy.to_dict()["store"] == "legacy"
    assert "manifest or index digest" in containerd.id_is and "config digest differs" in containerd.id_is
