"""Write synthetic hospitals for the example plugin task (docs/own-data.md).

    python examples/plugin-task/make_data.py --out /tmp/ecg               # north.npz, south.npz..
    python examples/plugin-task/make_data.py --out /tmp/ecg --layout csv  # folders of CSV signals

Works without installing the package: it puts its own folder on the import path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from swarm_example_task.synthetic import SITES, make_sites


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the sites into")
    parser.add_argument("--sites", type=int, default=3, help=f"how many (1 to {len(SITES)})")
    parser.add_argument("--rows", type=int, default=160, help="signals per site")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=("npz", "csv"), default="npz")
    args = parser.parse_args(argv)
    for path in make_sites(
        args.out, sites=args.sites, rows=args.rows, seed=args.seed, layout=args.layout
    ):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
