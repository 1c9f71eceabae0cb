"""Prepare a data set once, for training at any size:

    python -m ganlab.prepare source=DIR|ZIP output=PATH image_size=N channels=1|3
        [labels=auto|none|folders|dataset|FILE.json] [resize=lanczos] [crop=center|pad]
        [format=zip|litdata] [workers=N] [on_bad=skip|fail] [small=skip|upscale] [overwrite=false]

Every image of the source (a folder, searched recursively, or a zip) is decoded in ``workers``
processes, converted to 8-bit L or RGB, resized and stored as uint8, with its label; the
output carries a content hash (``ganlab.json``) and a report beside it
(``OUTPUT.report.json``) lists the files skipped (unreadable, not an image, too small) and
converted (CMYK, 16-bit, alpha, palette). ``format=zip`` is the StyleGAN2-ADA / StyleGAN3 /
R3GAN layout; ``format=litdata`` is litdata's chunks, which ``data=prepared`` streams when the
set does not fit ``data.memory_limit``. See ganlab.data.preparing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ganlab.cli import arg, run_command
from ganlab.errors import GanlabError
from ganlab.imagefiles import CROPS, FILTERS, SMALL, DecodeOptions
from ganlab.options import at_least, check

LAYOUTS = ("zip", "litdata")  # ganlab.data.preparing.LAYOUTS, without importing it here


@dataclass
class PrepareArgs:
    source: str = arg(help="a folder of images (searched recursively) or a zip", metavar="DIR|ZIP")
    output: str = arg(help="the data set to write: a .zip file or a litdata folder",
                      metavar="PATH")
    image_size: int = arg(help="the side of the square images stored", metavar="N")
    channels: int = arg(3, "1 (gray) or 3 (RGB)")
    labels: str = arg("auto", "auto (the source's dataset.json if any), none, folders (one "
                              "subfolder per class), dataset (its dataset.json) or FILE.json")
    resize: str = arg("lanczos", f"the resize filter: {', '.join(FILTERS)}")
    crop: str = arg("center", "center (fit the shorter side, cut the middle) or pad (fit the "
                              "longer side, pad with black)")
    format: str = arg("zip", "zip (the StyleGAN2-ADA layout) or litdata (chunks that stream)")
    workers: int = arg(0, "decoding processes (0: one per CPU)")
    on_bad: str = arg("skip", "unusable files: skip (and list them in the report) or fail")
    small: str = arg("skip", "images smaller than image_size: skip or upscale")
    overwrite: bool = arg(False, "replace an existing output")
    progress: bool = arg(True, "a progress bar (a log line every 10 s off a terminal)")


def check_args(args: PrepareArgs) -> DecodeOptions:
    at_least(args.image_size, "image_size")
    check(args.channels in (1, 3), "channels", args.channels, "it must be 1 or 3")
    for key, allowed in (("resize", tuple(FILTERS)), ("crop", CROPS), ("format", LAYOUTS),
                         ("on_bad", ("skip", "fail")), ("small", SMALL)):
        value = getattr(args, key)
        check(value in allowed, key, value, f"it must be one of {', '.join(allowed)}")
    check(args.workers >= 0, "workers", args.workers, "it must be an integer >= 0 (0: one per CPU)")
    source, output = Path(args.source).expanduser(), Path(args.output).expanduser()
    if output.exists() and not args.overwrite:
        raise GanlabError(f"output={output} exists; pass overwrite=true to replace it, or "
                          "choose another output")
    if output.resolve() == source.resolve():
        raise GanlabError(f"output={output} is the source; choose another output")
    return DecodeOptions(args.image_size, args.channels, args.resize, args.crop, args.small)


def prepare(args: PrepareArgs) -> int:
    options = check_args(args)
    from ganlab.data.preparing import prepare_set, report_path
    from ganlab.data.source import open_source

    source = open_source(args.source, args.labels)
    workers = args.workers or os.cpu_count() or 1
    outcome = prepare_set(source, Path(args.output), options, args.format, workers,
                          args.on_bad, args.overwrite, progress=args.progress)
    meta, output = outcome.meta, Path(args.output).expanduser()
    classes = f", {meta['num_classes']} classes ({meta['labels']})" if meta["num_classes"] else ""
    rate = len(source.names) / max(outcome.seconds, 1e-9)
    print(f"prepared {meta['images']} images ({args.image_size}x{args.image_size}, "
          f"{args.channels} channel{'s' * (args.channels > 1)}{classes}) from {source.path} "
          f"in {outcome.seconds:.1f} s ({rate:.0f} images/s): {output} ({args.format})")
    print(f"skipped {len(outcome.skipped)}, converted {len(outcome.converted)}; report: "
          f"{report_path(output)}; content sha256 {meta['content_sha256']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(PrepareArgs, prepare, argv, prog="python -m ganlab.prepare",
                       summary="Convert a folder or zip of images once into a prepared data set "
                               "(data=prepared data.path=OUTPUT).")


if __name__ == "__main__":
    sys.exit(main())
