"""Write the synthetic data set as an h5 file in the recordings' schema.

    python -m trainables.data synth --out FILE [--seed S] [--resolution PX] [--images-per-object K]
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainables.core.usage import Parser, UsageError, check_writable, fail, setup_logging
from trainables.data.schema import from_arrays, write_h5
from trainables.data.synthetic import SyntheticSpec, generate


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m trainables.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic data set as an h5 file in the recordings' schema")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--resolution", type=int, default=224)
    synth.add_argument("--images-per-object", type=int, default=50)
    synth.add_argument("--repetitions", type=int, default=8)
    args = parser.parse_args(argv)
    setup_logging()
    if args.resolution < 16 or args.images_per_object < 2 or args.repetitions < 2:
        fail("--resolution must be >= 16, --images-per-object and --repetitions >= 2")
    try:
        check_writable(args.out.parent, "--out")
    except UsageError as err:
        fail(str(err))
    spec = SyntheticSpec(args.seed, args.resolution, args.images_per_object, args.repetitions)
    arrays = generate(spec)
    write_h5(arrays, args.out)
    data = from_arrays(arrays, str(args.out))
    print(f"wrote {args.out}: {data.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
