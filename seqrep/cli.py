"""The `seqrep` command: `seqrep data`, `seqrep run-notebooks`."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import SeqrepError


def _describe(args: argparse.Namespace) -> None:
    from .data import list_datasets, load_dataset, make_sequences

    if args.list:
        print("\n".join(list_datasets()))
        return
    if args.name is None:
        raise SeqrepError("name a dataset (e.g. `seqrep data GunPoint`), or pass --list.")
    if args.name.lower() == "synthetic":
        splits = {"all": make_sequences().describe()}
    else:
        splits = {s: load_dataset(args.name, split=s).describe() for s in ("train", "test")}
    if args.json:
        print(json.dumps(splits, indent=1))
        return
    for split, d in splits.items():
        imb = d["imbalance"]
        per = imb["per_class"]
        length = d["length"]
        print(f"{d['name']}: {d['samples']} samples, {d['classes']} classes, "
              f"{d['channels']} channel(s), length {length['min']}"
              + (f"-{length['max']} (variable)" if d["variable_length"] else ""))
        print(f"  per class: min {per['min']}, median {per['median']}, mean {per['mean']}, "
              f"max {per['max']}; max/min ratio {imb['max_min_ratio']}, "
              f"balance (normalised entropy) {imb['balance_entropy']}, "
              f"{imb['classes_under_5']} classes under 5 samples")
        counts = ", ".join(f"{c}:{n}" for c, n in d["class_counts"].items())
        print(f"  counts ({split}): {counts}")


def _run_notebooks(args: argparse.Namespace) -> None:
    from .notebooks import parse_params, run_notebooks

    params = parse_params(args.param)
    if args.quick:
        params["quick"] = True
    if args.full:
        params["full"] = True
    run_notebooks(args.notebooks or None, params, force=args.force)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqrep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="describe a dataset: classes, sizes, length, imbalance")
    p.add_argument("name", nargs="?", help="'synthetic', a dataset name, a folder or a file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--list", action="store_true", help="list the datasets found by name")
    p.set_defaults(func=_describe)

    p = sub.add_parser("run-notebooks", help="execute notebooks into executed/ (.ipynb + .html)")
    p.add_argument("notebooks", nargs="*", help="names (default: all, in order)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="papermill parameter for every notebook (repeatable)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny settings (as the tests use)")
    mode.add_argument("--full", action="store_true", help="the larger experiments")
    p.add_argument("--force", action="store_true", help="re-execute unchanged notebooks too")
    p.set_defaults(func=_run_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SeqrepError as err:
        print(f"seqrep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqrep {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
