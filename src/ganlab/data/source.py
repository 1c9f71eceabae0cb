"""What a data set is made from: the image files of a folder or a zip, in sorted order, and
their labels (class subfolders, a ``dataset.json`` in the StyleGAN2-ADA layout, or none).

Every problem with the source is one line naming the key that gave it (``source`` for
``python -m ganlab.prepare``, ``data.path`` for ``data=image_folder``) and what to do.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ganlab.errors import GanlabError
from ganlab.imagefiles import IMAGE_EXTENSIONS

LABEL_CHOICES = ("auto", "none", "folders", "dataset")  # or the path of a .json file
DATASET_JSON = "dataset.json"


@dataclass
class Source:
    """The images of ``path`` (``names``: paths relative to a folder, or zip member names,
    sorted) and their labels (None: unlabelled); ``class_names`` for class subfolders."""

    path: Path
    is_zip: bool
    names: list[str]
    labels: list[int] | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    labels_from: str = "none"

    def locate(self, name: str) -> str:
        """What a decoding process opens for ``name``: a file path, or the zip member."""
        return name if self.is_zip else str(self.path / name)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def folder_files(path: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every image file under ``path``, sorted by path.
    Files and folders whose names start with a dot are left out."""
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or not _is_image(name):
                continue
            full = os.path.join(root, name)
            stat = os.stat(full)
            found.append((Path(full).relative_to(path).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def zip_names(path: Path, key: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise GanlabError(f"{key}={path} is not a readable zip file ({err}); give a folder of "
                          "images or a zip written by ganlab.prepare or StyleGAN's dataset_tool.py"
                          ) from None
    return sorted(n for n in names if _is_image(n) and not n.startswith("__MACOSX/"))


def open_source(path: str | Path, labels: str = "auto", key: str = "source",
                names: list[str] | None = None) -> Source:
    """The source at ``path`` with its labels (``labels``: auto, none, folders, dataset or a
    FILE.json); ``names``: the folder's files when the caller listed them already."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GanlabError(f"{key}={path} does not exist; give a folder of images or a zip")
    is_zip = path.is_file()
    if is_zip:
        names = zip_names(path, key)
    elif names is None:
        names = [name for name, _, _ in folder_files(path)]
    if not names:
        raise GanlabError(f"{key}={path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                          "give a folder or zip that holds images")
    source = Source(path, is_zip, names)
    if labels == "folders":
        _folder_labels(source, key)
    elif labels in ("auto", "dataset"):
        text = _dataset_json(source)
        if text is None and labels == "dataset":
            raise GanlabError(f"labels=dataset but {key}={path} has no {DATASET_JSON}; use "
                              "labels=none, labels=folders or labels=FILE.json")
        if text is not None:
            _json_labels(source, text, f"{path}{'!' if is_zip else os.sep}{DATASET_JSON}")
    elif labels != "none":
        if not labels.endswith(".json"):
            raise GanlabError(f"labels={labels!r} is not allowed: it must be one of "
                              f"{', '.join(LABEL_CHOICES)} or the path of a .json file")
        file = Path(labels).expanduser()
        try:
            text = file.read_text()
        except OSError as err:
            raise GanlabError(f"labels={file} cannot be read ({err.strerror or err}); give "
                              "a dataset.json file of [file name, class] pairs") from None
        _json_labels(source, text, str(file))
    return source


def _dataset_json(source: Source) -> str | None:
    if source.is_zip:
        with zipfile.ZipFile(source.path) as archive:
            if DATASET_JSON not in archive.namelist():
                return None
            return archive.read(DATASET_JSON).decode("utf-8", errors="replace")
    file = source.path / DATASET_JSON
    return file.read_text() if file.is_file() else None


def _folder_labels(source: Source, key: str) -> None:
    """Class = the first folder of a file's path; classes in sorted order of their names."""
    loose = [n for n in source.names if "/" not in n]
    if loose:
        raise GanlabError(
            f"labels=folders but {len(loose)} image(s) lie directly in {key}={source.path}, "
            f"outside any class folder (e.g. {loose[0]}); move them into a class folder or use "
            "labels=none")
    folders = [n.split("/", 1)[0] for n in source.names]
    source.class_names = sorted(set(folders))
    index = {name: i for i, name in enumerate(source.class_names)}
    source.labels = [index[f] for f in folders]
    source.num_classes = len(source.class_names)
    source.labels_from = "folders"


def _json_labels(source: Source, text: str, where: str) -> None:
    """Labels from StyleGAN2-ADA's dataset.json: ``{"labels": [[name, class], ...]}`` or
    ``{"labels": null}``; every image needs a label, every labelled file must exist."""
    try:
        pairs = json.loads(text).get("labels", "missing")
    except (json.JSONDecodeError, AttributeError) as err:
        raise GanlabError(f"{where} is not a JSON object ({err}); it must be "
                          '{"labels": [[file name, class], ...]} or {"labels": null}') from None
    if pairs is None:
        return
    if not isinstance(pairs, list):
        raise GanlabError(f"{where} has no list under \"labels\"; it must be "
                          '{"labels": [[file name, class], ...]} or {"labels": null}')
    given: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        ok = (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
              and isinstance(pair[1], int) and not isinstance(pair[1], bool) and pair[1] >= 0)
        if not ok:
            raise GanlabError(f"{where}: labels[{i}] is {json.dumps(pair)[:80]}, not a [file "
                              "name, class] pair with an integer class >= 0; fix that entry")
        given[pair[0].replace("\\", "/")] = pair[1]
    names = set(source.names)
    absent = [n for n in given if n not in names]
    if absent:
        raise GanlabError(f"{where} names {len(absent)} file(s) that are not images of "
                          f"{source.path} (e.g. {absent[0]}); remove those entries or add the files")
    unlabelled = [n for n in source.names if n not in given]
    if unlabelled:
        raise GanlabError(f"{len(unlabelled)} image(s) of {source.path} have no label in {where} "
                          f"(e.g. {unlabelled[0]}); label them, or use labels=none")
    source.labels = [given[n] for n in source.names]
    source.num_classes = max(source.labels) + 1
    source.labels_from = DATASET_JSON if where.endswith(DATASET_JSON) else where
