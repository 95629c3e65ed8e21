"""``vitiseg-verify-data DATASET``: list every problem in a dataset folder.

Prints one line per problem (``FILE: what is wrong``) and exits 1 if there is any;
on a clean set prints a one-line summary and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vitiseg.data.verify import DEFAULT_REGIONS, verify_dataset
from vitiseg.paths import config_dir

logger = logging.getLogger(__name__)


def allowed_regions() -> tuple[str, ...]:
    """Region names from ``configs/vasi/default.yaml`` (``regions:``), else the defaults."""
    try:
        path = config_dir() / "vasi" / "default.yaml"
    except FileNotFoundError:
        return DEFAULT_REGIONS
    if not path.is_file():
        return DEFAULT_REGIONS
    from omegaconf import OmegaConf

    regions = OmegaConf.load(path).get("regions")
    if not regions:
        logger.warning("%s has no regions: mapping; using the default region names", path)
        return DEFAULT_REGIONS
    return tuple(str(name) for name in regions)


def main(argv: list[str] | None = None) -> int:
    """Verify one or more dataset folders; returns 1 when any problem is found."""
    parser = argparse.ArgumentParser(
        prog="vitiseg-verify-data",
        description="Check a vitiseg dataset folder and list every problem found.",
    )
    parser.add_argument("datasets", nargs="+", metavar="DATASET", help="dataset folder(s)")
    parser.add_argument(
        "--max-lesion-outside-skin",
        type=int,
        default=0,
        help="lesion pixels allowed outside the skin mask per case (default 0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    regions = allowed_regions()
    failed = False
    for dataset in args.datasets:
        report = verify_dataset(
            dataset, regions, max_lesion_outside_skin=args.max_lesion_outside_skin
        )
        for problem in report.problems:
            print(problem)
        print(report.summary())
        failed = failed or not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
