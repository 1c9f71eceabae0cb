"""python -m ganlab.prepare: folders and zips of images to a prepared set, with odd files,
labels, both layouts, the report, and one-line errors that leave nothing behind."""

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.data.preparing import Progress
from ganlab.data.store import open_set, read_images
from ganlab.prepare import main

COLORS = {"cat": [(10, 20, 30), (40, 50, 60)], "dog": [(200, 100, 0)]}


def write_tree(root: Path, odd: bool = True) -> None:
    """Class folders of solid 20x24 images (solid: any resize keeps the colour exactly), and
    with ``odd`` one file of every troublesome kind."""
    for name, colors in COLORS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, color in enumerate(colors):
            Image.new("RGB", (24, 20), color).save(root / name / f"{i}.png")
    if not odd:
        return
    good = (root / "cat" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "notes.png").write_bytes(b"not an image")
    Image.new("CMYK", (20, 20), (0, 0, 0, 0)).save(root / "dog" / "cmyk.jpg")
    Image.fromarray(np.full((20, 20), 32768, np.uint16)).save(root / "dog" / "wide.png")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(root / "dog" / "rgba.png")  # transparent
    palette = Image.new("P", (20, 20), 1)
    palette.putpalette([0, 0, 0, 7, 8, 9] + [0] * 762)
    palette.save(root / "dog" / "palette.png")
    Image.new("RGB", (8, 8)).save(root / "dog" / "small.png")


def prepare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["progress=false", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_tree_with_class_folders_and_odd_files(tmp_path, capsys):
    write_tree(tmp_path / "src")
    out = tmp_path / "set.zip"
    code, stdout, _ = prepare(capsys, f"source={tmp_path / 'src'}", f"output={out}",
                              "image_size=16", "labels=folders")
    assert code == 0 and "prepared 7 images" in stdout and "skipped 3, converted 4" in stdout
    report = json.loads((tmp_path / "set.zip.report.json").read_text())
    assert {f["file"]: f["reason"].split(" ")[0] for f in report["skipped_files"]} == {
        "dog/truncated.png": "truncated", "dog/notes.png": "not", "dog/small.png": "smaller"}
    assert {f["file"]: f["conversion"] for f in report["converted_files"]} == {
        "dog/cmyk.jpg": "CMYK", "dog/wide.png": "16-bit", "dog/rgba.png": "RGBA: alpha over white",
        "dog/palette.png": "P"}
    with zipfile.ZipFile(out) as archive:  # the StyleGAN2-ADA layout
        pairs = json.loads(archive.read("dataset.json"))["labels"]
        meta = json.loads(archive.read("ganlab.json"))
    assert pairs[0] == ["00000/img00000000.png", 0] and [c for _, c in pairs] == [0] * 2 + [1] * 5
    assert meta["class_names"] == ["cat", "dog"] and meta["resize"] == "lanczos"

    stored = open_set(out)
    x, y = read_images(stored)
    assert x.dtype == torch.uint8 and x.shape == (7, 3, 16, 16) and y.tolist() == [0, 0] + [1] * 5
    # Sorted file order: cat/0, cat/1, dog/0, dog/cmyk, dog/palette, dog/rgba, dog/wide.
    expected = [(10, 20, 30), (40, 50, 60), (200, 100, 0), (255, 255, 255), (7, 8, 9),
                (255, 255, 255), (128, 128, 128)]  # CMYK 0 is white; 32768/65535 -> 128
    for image, color in zip(x, expected, strict=True):
        assert image.flatten(1).unique(dim=1).squeeze(1).tolist() == list(color)
    assert stored.content_sha256 == meta["content_sha256"] == report["content_sha256"]


def test_litdata_holds_what_the_zip_holds(tmp_path, capsys):
    write_tree(tmp_path / "src")
    for layout in ("zip", "litdata"):
        code, _, _ = prepare(capsys, f"source={tmp_path / 'src'}", f"output={tmp_path / layout}",
                             "image_size=8", "channels=1", "labels=folders", f"format={layout}",
                             "crop=pad", "small=upscale")
        assert code == 0
    a, b = open_set(tmp_path / "zip"), open_set(tmp_path / "litdata")
    assert (a.layout, b.layout, a.images, b.images) == ("zip", "litdata", 8, 8)
    assert a.content_sha256 == b.content_sha256
    (xa, ya), (xb, yb) = read_images(a), read_images(b)
    assert xa.shape == (8, 1, 8, 8) and torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, yc = read_images(b, count=3)  # the first images only
    assert torch.equal(xc, xa[:3]) and torch.equal(yc, ya[:3])


def write_stylegan_zip(path: Path, n: int = 5, labels: bool = True) -> np.ndarray:
    """A zip as StyleGAN2-ADA's dataset_tool.py writes it; returns its (N, H, W, 3) pixels."""
    pixels = np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as archive:
        pairs = []
        for i, image in enumerate(pixels):
            name = f"00000/img{i:08d}.png"
            with archive.open(name, "w") as f:
                Image.fromarray(image).save(f, format="png", compress_level=0)
            pairs.append([name, i % 3])
        archive.writestr("dataset.json", json.dumps({"labels": pairs if labels else None}))
    return pixels


def test_a_stylegan_zip_is_read_as_it_is(tmp_path, capsys):
    pixels = write_stylegan_zip(tmp_path / "ffhq.zip")
    stored = open_set(tmp_path / "ffhq.zip")
    assert (stored.images, stored.image_size, stored.channels, stored.num_classes) == (5, 8, 3, 3)
    assert stored.content_sha256 is None  # not in the file: computed when read
    x, y = read_images(stored)
    assert torch.equal(x, torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert y.tolist() == [0, 1, 2, 0, 1]
    # Prepared again by ganlab (its dataset.json's labels by default): the same content.
    code, stdout, _ = prepare(capsys, f"source={tmp_path / 'ffhq.zip'}",
                              f"output={tmp_path / 'again.zip'}", "image_size=8")
    assert code == 0 and "3 classes (dataset.json)" in stdout
    assert open_set(tmp_path / "again.zip").content_sha256 == stored.content_sha256


def test_labels_from_a_json_file_of_pairs(tmp_path, capsys):
    write_tree(tmp_path / "src", odd=False)
    pairs = [["cat/0.png", 4], ["cat/1.png", 0], ["dog/0.png", 2]]
    (tmp_path / "labels.json").write_text(json.dumps({"labels": pairs}))
    code, stdout, _ = prepare(capsys, f"source={tmp_path / 'src'}", f"output={tmp_path / 'o.zip'}",
                              "image_size=4", f"labels={tmp_path / 'labels.json'}")
    assert code == 0 and "5 classes" in stdout
    assert read_images(open_set(tmp_path / "o.zip"))[1].tolist() == [4, 0, 2]


def test_overwrite_replaces_and_leaves_no_temporary_file(tmp_path, capsys):
    write_tree(tmp_path / "src", odd=False)
    args = [f"source={tmp_path / 'src'}", f"output={tmp_path / 'out'}", "image_size=4"]
    assert prepare(capsys, *args, "format=litdata")[0] == 0
    assert prepare(capsys, *args, "overwrite=true")[0] == 0  # a zip where a folder was
    assert open_set(tmp_path / "out").layout == "zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.report.json", "src"]


def bad_sources(root: Path) -> dict[str, tuple[list[str], str]]:
    """name: (arguments, what the one-line error must say)."""
    write_tree(root / "tree")
    (root / "empty").mkdir()
    write_tree(root / "named", odd=False)
    (root / "named" / "dataset.json").write_text(json.dumps({"labels": [["cat/0.png", 0],
                                                                        ["gone.png", 1]]}))
    write_tree(root / "texty", odd=False)
    (root / "texty" / "dataset.json").write_text(json.dumps({"labels": [["cat/0.png", "cat"]]}))
    write_stylegan_zip(root / "nolabels.zip")
    with zipfile.ZipFile(root / "nolabels.zip") as a, zipfile.ZipFile(root / "bare.zip", "w") as b:
        for name in a.namelist():
            if name != "dataset.json":
                b.writestr(name, a.read(name))
    (root / "taken.zip").write_bytes(b"precious")
    tree, size = f"source={root / 'tree'}", "image_size=8"
    return {
        "missing": ([f"source={root / 'nothing'}", size], "does not exist"),
        "empty": ([f"source={root / 'empty'}", size], "holds no image files"),
        "absent file": ([f"source={root / 'named'}", size], "names 1 file(s) that are not images"),
        "text label": ([f"source={root / 'texty'}", size], 'labels[0] is ["cat/0.png", "cat"]'),
        "zip without json": ([f"source={root / 'bare.zip'}", size, "labels=dataset"],
                             "has no dataset.json"),
        "bad file": ([tree, size, "on_bad=fail"], "dog/notes.png not an image"),
        "loose file": ([f"source={root / 'tree' / 'dog'}", size, "labels=folders"],
                       "outside any class folder"),
        "channels": ([tree, size, "channels=2"], "channels=2 is not allowed"),
        "crop": ([tree, size, "crop=fill"], "crop='fill' is not allowed"),
        "size": ([tree, "image_size=0"], "image_size=0 is not allowed"),
        "taken": ([tree, size, f"output={root / 'taken.zip'}"], "exists; pass overwrite=true"),
    }


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    for name, (args, message) in bad_sources(tmp_path).items():
        if not any(a.startswith("output=") for a in args):
            args = [*args, f"output={tmp_path / 'out.zip'}"]
        before = sorted(p.name for p in tmp_path.iterdir())
        code, _, err = prepare(capsys, *args)
        assert code == 2, name
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (name, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name
    assert (tmp_path / "taken.zip").read_bytes() == b"precious"


def test_progress_reports_rate_and_time_left(caplog):
    progress = Progress(4, "prepare x", interval=0)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            progress.step()
    assert "prepare x: 2/4 images" in caplog.text and "images/s" in caplog.text
    assert "s left" in caplog.text


@pytest.mark.slow
def test_two_processes_prepare_what_one_does(tmp_path, capsys):
    rng = np.random.default_rng(1)
    (tmp_path / "src").mkdir()
    for i in range(600):  # enough for two processes (256 files each at least)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            tmp_path / "src" / f"{i:04d}.png")
    hashes = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.zip"
        code, stdout, _ = prepare(capsys, f"source={tmp_path / 'src'}", f"output={out}",
                                  "image_size=8", f"workers={workers}")
        assert code == 0 and "prepared 600 images" in stdout
        hashes.append(open_set(out).content_sha256)
    assert hashes[0] == hashes[1]
