"""The `seqrep` command: data, train, show-latest-epoch, diagnose, run-notebooks."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

from .build import build_model
from .config import RENAMED, ModelSpec, TrainConfig
from .data import (
    check_train_val,
    dataset_files,
    list_datasets,
    load_dataset,
    load_train_val,
    make_sequences,
)
from .errors import SeqrepError, why_missing
from .live import LivePlot
from .notebooks import parse_params, run_notebooks
from .runlog import LOG_NAME, format_record, read_log, show_latest_epoch
from .train import fit, new_run_dir


def _describe(args: argparse.Namespace) -> None:
    if args.list:
        print("\n".join(list_datasets()))
        return
    if args.name is None:
        raise SeqrepError("name a dataset (e.g. `seqrep data GunPoint`), or pass --list.")
    if args.name.lower() == "synthetic":
        splits = {"all": make_sequences().describe()}
    else:
        missing = getattr(args, "missing", None) or "error"
        name, files = dataset_files(args.name)
        loaded = {s: load_dataset(args.name, split=s, missing=missing) for s in files}
        splits = {s: ds.describe() for s, ds in loaded.items()}
        for split in ("train", "test"):
            if split not in files:
                print(f"seqrep data: note: {name} has no {split} split", file=sys.stderr)
        if "train" in loaded:  # what `seqrep train` would warn about or refuse, said up front
            try:
                check_train_val(loaded["train"], loaded.get("test"))
            except SeqrepError as err:
                print(f"seqrep data: note: cannot train on it: {err}", file=sys.stderr)
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
        if d.get("source"):
            print(f"  file: {d['source']}")


def _train_data(args: argparse.Namespace):
    """(train, val) for `seqrep train`: `seqrep.data.load_train_val` (the synthetic scenario
    split 80/20, or a dataset's train split validated on its test split)."""

    synthetic = {"n_classes": args.classes, "n_samples": args.samples, "length": args.length}
    return load_train_val(args.dataset, missing=getattr(args, "missing", None) or "error",
                          seed=args.data_seed, **(synthetic if args.dataset.lower() == "synthetic" else {}))


def _resume_command(args: argparse.Namespace, run_dir: Path) -> str:
    """The command that resumes this run: the arguments it was started with (a resume must
    train the same config on the same data), --resume and its --run-dir."""
    argv, kept = list(args.argv), []
    while argv:
        arg = argv.pop(0)
        if arg == "--run-dir":
            argv = argv[1:]
        elif arg != "--resume" and not arg.startswith("--run-dir="):
            kept.append(arg)
    return shlex.join(["seqrep", *kept, "--resume", "--run-dir", str(run_dir)])


def _newest_run(dataset: str) -> Path | None:
    """The newest run directory new_run_dir made for `dataset` under ./runs, or None."""
    runs = sorted(Path("runs").glob(f"*-{Path(dataset).name}")) if Path("runs").is_dir() else []
    return runs[-1] if runs else None


def _logged_config(text: str) -> TrainConfig:
    """The TrainConfig of --config: a run directory or its run.jsonl (the config its start
    record logged: for a run planned from a time budget, with the epochs the plan chose), or a
    .json file holding a TrainConfig's fields."""
    path = Path(text) / LOG_NAME if Path(text).is_dir() else Path(text)
    if not path.is_file():
        raise SeqrepError(f"--config {text}: {why_missing(path)}; give a run directory, its {LOG_NAME}, "
                          "or a .json file of TrainConfig fields.")
    if path.suffix == ".jsonl":
        starts = [r for r in read_log(path) if r.get("event") == "start" and "config" in r]
        if not starts:
            raise SeqrepError(f"--config {text}: {path} has no start record with a config; is it a seqrep run log?")
        return TrainConfig.from_dict(starts[0]["config"])
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SeqrepError(f"--config {text}: not a JSON file ({err}); give a run directory or a .json of "
                          "TrainConfig fields, e.g. {\"lr\": 0.001, \"model\": {\"init\": \"random\"}}.") from None
    if not isinstance(values, dict):
        raise SeqrepError(f"--config {text}: expected a JSON object of TrainConfig fields, got {type(values).__name__}.")
    return TrainConfig.from_dict(values)


def _train(args: argparse.Namespace) -> None:
    if args.resume and not args.run_dir:
        newest = _newest_run(args.dataset)
        raise SeqrepError(
            "--resume continues the run in --run-dir, and none was given (without it a new run "
            "gets a fresh directory). Name the run directory"
            + (f"; the newest run of {args.dataset} is {newest}: {_resume_command(args, newest)}" if newest else
               ", e.g. --run-dir runs/<time>-" + Path(args.dataset).name) + "."
        )
    given = {name: value for name in _config_fields() if (value := getattr(args, name)) is not None}
    model = {k: given.pop(k) for k in list(given) if k in _fields(ModelSpec)}
    if args.broken:  # reproducing the bug on purpose: the gradient-flow guard would refuse it
        model["extraction"], given["check_gradients"] = "broken", False
    config = (_logged_config(args.config) if args.config else TrainConfig()).replace(**given, model=model)
    train, val = _train_data(args)
    run_dir = Path(args.run_dir) if args.run_dir else new_run_dir("runs", args.dataset, create=False)
    net = build_model(config, train)
    print(f"run directory: {run_dir}  (watch it with: seqrep show-latest-epoch {run_dir} --follow)")
    callbacks = []
    if args.live:
        callbacks.append(LivePlot(to="file"))
        print(f"live curves: {run_dir / 'live.png'} (redrawn while training)")
    existed = run_dir.exists()
    try:
        result = fit(net, train, val, config, run_dir, callbacks, resume=args.resume, device=args.device)
    except KeyboardInterrupt:
        if (run_dir / "checkpoint.pt").exists():
            print(f"log and checkpoint kept in {run_dir}; resume with: {_resume_command(args, run_dir)}",
                  file=sys.stderr)
        raise
    finally:
        if not existed and run_dir.is_dir() and not any(p.name != "run.lock" for p in run_dir.iterdir()):
            for p in run_dir.iterdir():
                p.unlink()
            run_dir.rmdir()  # nothing was written: leave no empty folder behind
    if result.final:
        print(format_record(result.final))
    if result.stopped:
        print(f"stopped: {result.stopped}")


def _show_latest(args: argparse.Namespace) -> None:
    show_latest_epoch(args.run_dir, follow=args.follow, interval=args.interval)


def _diagnose(args: argparse.Namespace) -> None:
    from .diagnosis import diagnose, follow

    mapping = {}
    for item in args.map:
        metric, sep, column = item.partition("=")
        if not sep or not metric or not column:
            raise SeqrepError(f"--map {item!r}: expected METRIC=COLUMN, e.g. --map val_acc=top1.")
        mapping[metric.strip()] = column.strip()
    if args.follow:
        report = follow(args.path, interval=args.interval, map=mapping or None, classes=args.classes,
                        out=sys.stderr if args.json else sys.stdout)
        if report is None:
            return
    else:
        report = diagnose(args.path, map=mapping or None, classes=args.classes)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report)


def _run_notebooks(args: argparse.Namespace) -> None:
    params = parse_params(args.param)
    if args.quick:
        params["quick"] = True
    if args.full:
        params["full"] = True
    run_notebooks(args.notebooks or None, params, force=args.force)


def _fields(cls) -> list:
    return [f.name for f in dataclasses.fields(cls)]


def _config_fields() -> dict[str, dataclasses.Field]:
    """TrainConfig's fields and its ModelSpec's, by name: one flag each."""

    fields = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "model"}
    return {**fields, **{f.name: f for f in dataclasses.fields(ModelSpec)}}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, e.g. 9,19,39; got {text!r}") from None


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--name for every field of TrainConfig and ModelSpec, typed and documented from the
    fields themselves; unset flags keep the config's defaults."""
    group = parser.add_argument_group("training configuration (TrainConfig / ModelSpec fields)")
    for name, f in _config_fields().items():
        flag, meta = f"--{name.replace('_', '-')}", f.metadata
        kwargs = {"dest": name, "default": None, "help": f"{meta.get('help', '')} (default: {f.default!r})"}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(f.type, _int_list)
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
        group.add_argument(flag, **kwargs)


def _add_renamed_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of fields renamed since (config.RENAMED), hidden from --help: each is refused
    naming the new flag."""
    for old, new in RENAMED.items():
        flag, now = f"--{old.replace('_', '-')}", f"--{new.replace('_', '-')}"

        class Renamed(argparse.Action):
            def __call__(self, parser, namespace, values, option_string=None, now=now):
                parser.error(f"{option_string} was renamed: use {now} (e.g. {now} {values})")

        parser.add_argument(flag, action=Renamed, help=argparse.SUPPRESS)


def _add_missing_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--missing", choices=("error", "interpolate"), default=None,
                        help="missing values (NaN, '?') in a dataset file: refuse them (default) "
                             "or interpolate them linearly along time")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the fixed (or --broken) model, logging to a run dir")
    p.add_argument("dataset", nargs="?", default="synthetic",
                   help="'synthetic' (default), a dataset name, a folder or a file")
    p.add_argument("--run-dir", help="where the log and checkpoint go (default: runs/<time>-<dataset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--config", help="start from the config a run logged (a run directory or its run.jsonl: "
                   "repeats that run, its planned epochs included) or a .json of TrainConfig fields; "
                   "flags given override it")
    p.add_argument("--broken", action="store_true",
                   help="the broken legacy model: short for --extraction broken --no-check-gradients")
    p.add_argument("--device", default="cpu")
    p.add_argument("--live", action="store_true",
                   help="redraw the training curves into RUN_DIR/live.png while training")
    p.add_argument("--classes", type=int, default=60, help="synthetic: number of classes")
    p.add_argument("--samples", type=int, default=500, help="synthetic: number of samples")
    p.add_argument("--length", type=int, default=128, help="synthetic: series length")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic: generator and split seed")
    _add_missing_flag(p)
    _add_config_flags(p)
    _add_renamed_flags(p)
    p.set_defaults(func=_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqrep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="describe a dataset: classes, sizes, length, imbalance")
    p.add_argument("name", nargs="?", help="'synthetic', a dataset name, a folder or a file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--list", action="store_true", help="list the datasets found by name")
    _add_missing_flag(p)
    p.set_defaults(func=_describe)

    _add_train_parser(sub)

    p = sub.add_parser("show-latest-epoch", help="print a run's latest epoch (tail of its log)")
    p.add_argument("run_dir", help="a run directory (or its run.jsonl)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new epochs")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    p.set_defaults(func=_show_latest)

    p = sub.add_parser("diagnose", help="read a training log and say why the model is not learning")
    p.add_argument("path", help="a log (seqrep run.jsonl, HF trainer_state.json, Lightning metrics.csv, "
                                "TensorBoard event file, CSV / JSON Lines) or a folder holding one")
    p.add_argument("--follow", "-f", action="store_true",
                   help="re-read as the log grows; stop at the end of the run (or Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--map", action="append", default=[], metavar="METRIC=COLUMN",
                   help="the column holding a metric, for unusual names (repeatable): metrics are "
                        "step, epoch, train_loss, val_loss, train_acc, val_acc, lr, grad_norm")
    p.add_argument("--classes", type=int, help="number of classes, when the log does not say")
    p.add_argument("--interval", type=float, default=2.0, help="--follow: seconds between reads")
    p.set_defaults(func=_diagnose)

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


class _DropWhenClosed(io.TextIOBase):
    """stdout of `seqrep train`, line by line: once the reader closes the pipe (`| head -1`,
    `| grep -m1`), the output is dropped, said once on stderr, and training goes on. The run's
    results are its log and checkpoint, not its stdout, so a reader that stops reading has not
    asked to stop a run that may have hours to go; Ctrl-C is how to stop it."""

    def __init__(self, stream):
        self.stream, self.dropping = stream, False

    @property
    def encoding(self) -> str:
        return self.stream.encoding

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def write(self, text: str) -> int:
        if not self.dropping:
            try:
                self.stream.write(text)
                self.stream.flush()  # line by line, so `| grep` sees each epoch as it ends
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.dropping:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.dropping = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())  # the interpreter's exit flush cannot fail again
        print("seqrep train: stdout was closed (| head?); training goes on without printing. Follow "
              "it with seqrep show-latest-epoch RUN_DIR --follow; stop it with Ctrl-C.", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout
    if args.command == "train":
        sys.stdout = _DropWhenClosed(stdout)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except SeqrepError as err:
        print(f"seqrep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqrep {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `seqrep data ... | head` stopped reading: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 1
    finally:
        sys.stdout = stdout
    return 0


def _warning_printer(command: str):
    """showwarning that prints 'seqrep COMMAND: warning: message' instead of a source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"seqrep {command}: warning: {message}", file=file or sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
