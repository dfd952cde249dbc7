"""seqrep.config: TrainConfig and ModelSpec validate field by field, round-trip, and drive the CLI."""

from __future__ import annotations

import math
import re

import pytest

import seqrep
from seqrep.cli import build_parser, main
from seqrep.config import ModelSpec, TrainConfig


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"epochs": 2.5}, "TrainConfig.epochs must be a whole number; got 2.5"),
        ({"lr": "0.01"}, "TrainConfig.lr must be a finite number; got '0.01' (str)"),
        ({"lr": math.inf}, "TrainConfig.lr must be a finite number; got inf"),
        ({"check_gradients": 1}, "TrainConfig.check_gradients must be True or False"),
        ({"sampler": "random"}, "TrainConfig.sampler must be one of 'shuffle', 'balanced'"),
        ({"model": {"kernel_sizes": "9,19"}}, "ModelSpec.kernel_sizes must be a tuple of whole numbers"),
        ({"model": {"init": "random", "width": 7, "kernel_sizes": (3, 5, 7)}}, "width 7 does not divide over 4 branches"),
    ],
)
def test_a_bad_field_is_named_alone(changes, fragment):
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)) as err:
        TrainConfig().replace(**changes)
    assert "weight_decay" not in str(err.value)  # the message names the field, not all of them


def test_whole_floats_are_whole_numbers_and_lists_are_tuples():
    config = TrainConfig(epochs=3.0, model={"init": "random", "kernel_sizes": [3, 5, 7]})
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.model.kernel_sizes == (3, 5, 7)


def test_unknown_fields_get_a_suggestion():
    with pytest.raises(seqrep.SeqrepError, match=r"no field\(s\) \['weight_decy'\] \(did you mean weight_decay\?\)"):
        TrainConfig.from_dict({"weight_decy": 0.1})


def test_nested_spec_round_trips_and_diffs_by_dotted_name():
    config = TrainConfig(model=ModelSpec(init="random", width=32, attention=False), lr=3e-3)
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.diff(TrainConfig()) == {"model.init": ("random", "data"), "model.width": (32, 64),
                                          "model.attention": (False, True), "lr": (3e-3, 1e-2)}
    assert config.replace(model={"width": 16}).model == ModelSpec(init="random", width=16, attention=False)


def test_every_config_field_is_a_documented_cli_flag():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("train"))
    flags = {opt for action in train._actions for opt in action.option_strings}
    helps = {a.dest: a.help for a in train._actions}
    for name in [*TrainConfig.__dataclass_fields__, *ModelSpec.__dataclass_fields__]:
        if name == "model":
            continue
        assert f"--{name.replace('_', '-')}" in flags, name
        assert helps[name] and "default" in helps[name], name
    assert "--no-attention" in flags and "--no-check-gradients" in flags


def test_cli_flags_reach_the_config(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--classes", "4", "--samples", "40", "--length", "80", "--epochs", "1",
                 "--init", "random", "--width", "8", "--kernel-sizes", "3,5,7", "--no-attention", "--grad-clip", "0.5",
                 "--schedule", "cosine", "--batch-size", "8", "--run-dir", str(run)])
    assert code == 0, capsys.readouterr().err
    start = seqrep.read_log(run)[0]
    assert start["config"]["model"]["attention"] is False and start["config"]["grad_clip"] == 0.5
    assert start["config"]["schedule"] == "cosine"
    assert start["model_spec"]["width"] == 8  # what ran


def test_cli_rejects_a_choice_that_does_not_exist(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--schedule", "step", "--run-dir", str(tmp_path / "r")])
    assert "invalid choice: 'step'" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["width", "kernel_sizes", "blocks", "bottleneck"])
def test_fields_the_data_fitted_start_ignores_are_refused_not_ignored(field):
    value = {"width": 32, "kernel_sizes": (3, 5, 7), "blocks": 1, "bottleneck": 8}[field]
    with pytest.raises(seqrep.SeqrepError, match=rf"{field}=.* would be ignored: init='data'.*init='random'"):
        ModelSpec(**{field: value})
    assert getattr(ModelSpec(init="random", **{field: value}), field) == value
    default = getattr(ModelSpec(), field)
    assert getattr(ModelSpec(init="data", **{field: default}), field) == default  # the default is fine
    with pytest.raises(seqrep.SeqrepError, match="would be ignored"):  # switching back refuses too
        ModelSpec(init="random", **{field: value}).replace(init="data")


def test_the_cli_says_a_field_is_ignored_by_the_default_start(tmp_path, capsys):
    code = main(["train", "--width", "8", "--epochs", "1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "width=8 would be ignored" in err and "--init random" in err
    assert not (tmp_path / "r").exists()


def test_the_old_name_of_init_is_pointed_to_the_new_one(tmp_path, capsys):
    with pytest.raises(seqrep.SeqrepError, match=r"no field\(s\) \['start'\] \(did you mean init\?\)"):
        TrainConfig.from_dict({"model": {"start": "random"}})
    with pytest.raises(SystemExit):
        main(["train", "--start", "random", "--run-dir", str(tmp_path / "r")])
    assert "--start was renamed: use --init" in capsys.readouterr().err


# ---------------------------------------------------------------------- hostile round two (issue 29)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: TrainConfig(lrate=0.1), "TrainConfig has no field(s) ['lrate'] (did you mean lr?)"),
        (lambda: TrainConfig(learning_rate=0.1), "(did you mean lr?)"),
        (lambda: ModelSpec(widht=32), "ModelSpec has no field(s) ['widht'] (did you mean width?)"),
        (lambda: TrainConfig(width=32), "(did you mean model={'width': ...} (a ModelSpec field)?)"),
    ],
)
def test_an_unknown_keyword_is_a_seqrep_error_with_a_suggestion(make, fragment):
    """TrainConfig(lrate=0.1) was the dataclass's bare TypeError, with no 'did you mean'."""
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        make()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{bad", "TrainConfig.from_json: not JSON (Expecting property name"),
        ("[1, 2]", "TrainConfig needs a dict of its fields ({'field': value, ...}), got list"),
        ("null", "got NoneType"),
        (b"\xff", "TrainConfig.from_json: not JSON"),
        (3, "from_json needs the text TrainConfig.to_json() wrote, got int"),
    ],
)
def test_from_json_on_text_that_is_no_config_is_a_clear_error(text, fragment):
    """Broken JSON was a raw JSONDecodeError, a list a bare 'int object is not iterable'."""
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        TrainConfig.from_json(text)
    with pytest.raises(seqrep.SeqrepError, match="needs a dict of its fields"):
        ModelSpec.from_dict([("width", 8)])


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"seed": 2**70}, "TrainConfig.seed must be a whole number from 0 to 4294967295"),
        ({"seed": -1}, "TrainConfig.seed must be a whole number from 0 to 4294967295"),
        ({"budget": 1e308}, "TrainConfig.budget must be within float32's range"),
        ({"lr": 1e300}, "TrainConfig.lr must be within float32's range"),
        ({"weight_decay": 1e300}, "TrainConfig.weight_decay must be within float32's range"),
        ({"weight_decay": 200.0}, "TrainConfig.weight_decay times lr (0.01) must be below 1"),
    ],
)
def test_values_that_passed_validation_and_crashed_fit_are_refused(changes, fragment):
    """seed=2**70 crashed torch.manual_seed, budget=1e308 the planner (OverflowError), lr=1e300
    AdamW ("value cannot be converted to type float"), weight_decay 200 flipped every weight."""
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        TrainConfig().replace(**changes)


def test_the_largest_accepted_values_still_make_a_config():
    config = TrainConfig(seed=2**32 - 1, budget=3e38, lr=3e38, weight_decay=0.0)
    assert TrainConfig.from_json(config.to_json()) == config
