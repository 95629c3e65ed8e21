"""``vitiseg-import``: convert annotation folders into the vitiseg dataset format.

Usage::

    vitiseg-import vitiligo-web SRC DST        # ../shared/data/vitiligo-web
    vitiseg-import skin-photos SRC DST         # ../shared/data/skin-photos
    vitiseg-import manifest SRC DST --mask-kind lesion [--patient-column source_name]
    vitiseg-import yolo SRC DST [--lesion-class vitiligo] [--patient-regex RE]
                                [--missing-labels-empty]
"""

from __future__ import annotations

import argparse
import logging
import sys

from vitiseg.data.importers import (
    PRESETS,
    ImportSummary,
    ManifestPreset,
    import_manifest_folder,
    import_yolo_folder,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitiseg-import",
        description="Convert images with masks or YOLO polygons into a vitiseg dataset.",
    )
    parser.add_argument(
        "kind",
        choices=["manifest", *PRESETS, "yolo"],
        help="source layout: a manifest folder, one of the shared sets, or a YOLO export",
    )
    parser.add_argument("source", help="folder to convert")
    parser.add_argument("destination", help="dataset folder to create or update")
    parser.add_argument(
        "--link", action="store_true", help="hard-link images instead of copying them"
    )
    manifest = parser.add_argument_group("manifest options")
    manifest.add_argument("--mask-kind", choices=["lesion", "skin"], default="lesion")
    manifest.add_argument(
        "--lesion-free",
        action="store_true",
        help="also write an all-zero lesion mask (photos known to show no lesion)",
    )
    manifest.add_argument("--patient-column", default="", help="column holding the patient id")
    manifest.add_argument(
        "--duplicate-column",
        default="",
        help="column (e.g. md5) whose equal values are put under one patient",
    )
    yolo = parser.add_argument_group("yolo options")
    yolo.add_argument(
        "--lesion-class",
        action="append",
        default=None,
        help="class id or name counted as lesion (repeatable; default: every class)",
    )
    yolo.add_argument(
        "--patient-regex",
        default=None,
        help="regex on the image stem giving the patient id (default: Roboflow stem before .rf.)",
    )
    yolo.add_argument(
        "--missing-labels-empty",
        action="store_true",
        help="an image without a label file is lesion-free (default: not annotated)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped item")
    return parser


def _report(summary: ImportSummary) -> None:
    for message in summary.skipped:
        print(f"skipped: {message}")
    print(
        f"{summary.root}: {summary.n_cases} cases, {summary.n_patients} patients, "
        f"{summary.n_lesion_masks} lesion masks, {summary.n_skin_masks} skin masks, "
        f"{len(summary.skipped)} skipped"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the importer; returns 1 when some source items had to be skipped."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s"
    )
    try:
        if args.kind == "yolo":
            summary = import_yolo_folder(
                args.source,
                args.destination,
                lesion_classes=args.lesion_class,
                patient_regex=args.patient_regex,
                missing_labels_empty=args.missing_labels_empty,
                link=args.link,
            )
        else:
            preset = PRESETS.get(args.kind) or ManifestPreset(
                mask_kind=args.mask_kind,
                lesion_free=args.lesion_free,
                patient_column=args.patient_column,
                duplicate_column=args.duplicate_column,
            )
            summary = import_manifest_folder(args.source, args.destination, preset, link=args.link)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(summary)
    return 1 if summary.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
