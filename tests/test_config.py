"""Tests for voicefake.config, plus the consistency check that every recipe YAML loads."""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from voicefake.audio.features import MEL_16K_40, MelConfig
from voicefake.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    to_dict,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inner:
    width: int = 4
    scale: float = 1.0


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    lr: float = 1e-3
    steps: int = 10
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    pair: tuple[float, float] = (0.8, 0.9)
    sizes: tuple[int, ...] = (1, 2)
    grid: tuple[tuple[int, ...], ...] = ((1, 3), (5,))
    weights: dict[str, float] = field(default_factory=lambda: {"mel": 45.0})
    mels: tuple[MelConfig, ...] = ()
    maybe: int | None = None


@dataclass(frozen=True)
class Required:
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")


# ----------------------------------------------------------------------------- from_dict


def test_from_dict_defaults_and_values() -> None:
    assert from_dict(Outer, {}) == Outer()
    cfg = from_dict(Outer, {
        "name": "run", "lr": 2, "steps": 3, "flag": True, "mode": "b",
        "inner": {"width": 8}, "pair": [0.5, 0.99], "sizes": [4, 5, 6],
        "grid": [[1, 2], [3, 4, 5]], "weights": {"mel": 1, "fm": 2.5},
        "mels": [{"n_mels": 40, "n_fft": 512, "win_length": 400}], "maybe": 7,
    })
    assert cfg.lr == 2.0 and isinstance(cfg.lr, float)
    assert cfg.inner == Inner(width=8, scale=1.0)
    assert cfg.pair == (0.5, 0.99) and cfg.sizes == (4, 5, 6)
    assert cfg.grid == ((1, 2), (3, 4, 5)) and isinstance(cfg.grid[0], tuple)
    assert cfg.weights == {"mel": 1.0, "fm": 2.5} and all(isinstance(v, float) for v in cfg.weights.values())
    assert cfg.mels == (MEL_16K_40.replace(sample_rate=16000),) and isinstance(cfg.mels[0], MelConfig)
    assert cfg.maybe == 7 and from_dict(Outer, {"maybe": None}).maybe is None


def test_unknown_key_names_key_and_allowed() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"lr": 1.0, "learning_rate": 1.0})
    message = str(info.value)
    assert "learning_rate" in message and "allowed" in message and "'lr'" in message


def test_unknown_nested_key_names_the_path() -> None:
    with pytest.raises(ConfigError, match=r"train\.inner.*unknown key.*'depth'"):
        from_dict(Outer, {"inner": {"depth": 2}}, "train")
    with pytest.raises(ConfigError, match=r"mels.*unknown key.*'bins'"):
        from_dict(Outer, {"mels": [{"bins": 2}]})


@pytest.mark.parametrize(
    "data, match",
    [
        ({"mode": "c"}, r"mode: 'c' is not one of \['a', 'b'\]"),
        ({"steps": "ten"}, r"steps: expected int"),
        ({"steps": 1.5}, r"steps: expected int"),
        ({"steps": True}, r"steps: expected int"),
        ({"lr": True}, r"lr: expected float"),
        ({"lr": "fast"}, r"lr: expected float"),
        ({"flag": "yes"}, r"flag: expected bool"),
        ({"name": 3}, r"name: expected str"),
        ({"inner": 3}, r"inner: expected a mapping"),
        ({"sizes": 3}, r"sizes: expected a list"),
        ({"pair": [0.1]}, r"pair: expected a list of 2 items"),
        ({"pair": [0.1, 0.2, 0.3]}, r"pair: expected a list of 2 items"),
        ({"weights": [1.0]}, r"weights: expected a mapping"),
        ({"weights": {"mel": "x"}}, r"weights: expected float"),
        ({"grid": [[1, "a"]]}, r"grid: expected int"),
    ],
)
def test_type_errors(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_float_from_int_and_exponent_string() -> None:
    assert from_dict(Outer, {"lr": 2}).lr == 2.0
    cfg = from_dict(Outer, {"lr": "2e-4"})
    assert cfg.lr == pytest.approx(2e-4) and isinstance(cfg.lr, float)
    # YAML 1.1 reads 2e-4 (no dot) as a string: the round trip through YAML must still work
    assert from_dict(Outer, load_yaml_text("lr: 2e-4\n")).lr == pytest.approx(2e-4)


def load_yaml_text(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def test_missing_required_and_post_init_become_config_errors() -> None:
    with pytest.raises(ConfigError, match="size"):
        from_dict(Required, {})
    with pytest.raises(ConfigError, match=r"model: size must be >= 0"):
        from_dict(Required, {"size": -1}, "model")
    with pytest.raises(ConfigError, match=r"mel:.*win_length"):
        from_dict(MelConfig, {"win_length": 4096}, "mel")
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(Outer, [1, 2])  # type: ignore[arg-type]


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- to_dict


def test_to_dict_round_trip_plain_types() -> None:
    cfg = Outer(
        name="n", lr=0.5, inner=Inner(2, 0.5), pair=(0.1, 0.2), grid=((1,), (2, 3)),
        weights={"a": 1.0}, mels=(MEL_16K_40,), maybe=3,
    )
    data = to_dict(cfg)
    assert data["grid"] == [[1], [2, 3]] and data["inner"] == {"width": 2, "scale": 0.5}
    assert data["mels"][0]["n_mels"] == 40
    assert from_dict(Outer, data) == cfg
    import json

    assert from_dict(Outer, json.loads(json.dumps(data))) == cfg


def test_to_dict_rejects_non_dataclasses() -> None:
    with pytest.raises(TypeError):
        to_dict({"a": 1})
    with pytest.raises(TypeError):
        to_dict(Outer)


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = Outer(grid=((1, 2),), mels=(MEL_16K_40,), lr=2e-4)
    dump_yaml({"train": to_dict(cfg)}, tmp_path / "c.yaml")
    back = load_yaml(tmp_path / "c.yaml")
    assert from_dict(Outer, back["train"]) == cfg


def test_load_yaml_errors(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}
    with pytest.raises(FileNotFoundError):
        load_yaml(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- overrides


def test_apply_overrides_dotted_paths() -> None:
    base = {"train": {"lr": 1e-3, "inner": {"width": 4}}, "loop": {"max_steps": 5}, "mel": None}
    out = apply_overrides(base, [
        "train.lr=2e-4", "train.inner.width=16", "loop.max_steps=10", "loop.device=cpu",
        "data.train_manifest=a=b.csv", "train.pair=[0.5, 0.6]", "train.flag=true", "mel.n_mels=40",
    ])
    assert out["train"]["inner"]["width"] == 16
    assert out["loop"] == {"max_steps": 10, "device": "cpu"}
    assert out["data"]["train_manifest"] == "a=b.csv"  # only the first '=' splits
    assert out["train"]["pair"] == [0.5, 0.6] and out["train"]["flag"] is True
    assert out["mel"] == {"n_mels": 40}  # an empty YAML section takes overrides
    assert from_dict(Outer, {"lr": out["train"]["lr"]}).lr == pytest.approx(2e-4)
    # the input is not modified
    assert base["train"]["lr"] == 1e-3 and base["loop"] == {"max_steps": 5} and base["mel"] is None


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.lr", "expected dotted.key=value"),
        ("train.lr.value=3", "'lr' is not a section"),
        ("=3", "empty key"),
        ("train..lr=3", "empty key"),
    ],
)
def test_apply_overrides_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides({"train": {"lr": 1.0}}, [override])


def test_override_of_unknown_key_is_caught_by_from_dict() -> None:
    out = apply_overrides({"train": {}}, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="lrr"):
        from_dict(Outer, out["train"], "train")


# ----------------------------------------------------------------------------- recipes


def _recipe_yaml_files() -> list[Path]:
    return sorted(REPO.glob("recipes/*/configs/*.yaml"))


def _section_classes(train_py: Path) -> dict[str, str]:
    """Section -> class name, read from ``from_dict(Cls, raw.get("section", ...), ...)`` calls.

    Also accepts ``raw["section"]`` and ``raw.get("section") or {}``. A recipe may instead
    define ``SECTIONS = {"model": ModelConfig, ...}`` at module level, which wins.
    """
    tree = ast.parse(train_py.read_text())
    sections: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "from_dict"):
            continue
        if len(node.args) < 2 or not isinstance(node.args[0], (ast.Name, ast.Attribute)):
            continue
        source = node.args[1]
        if isinstance(source, ast.BoolOp):
            source = source.values[0]
        key = None
        if isinstance(source, ast.Call) and getattr(source.func, "attr", None) == "get" and source.args:
            key = source.args[0]
        elif isinstance(source, ast.Subscript):
            key = source.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            sections[key.value] = ast.unparse(node.args[0])
    return sections


def _import_recipe(train_py: Path) -> Any:
    name = f"_recipe_{train_py.parent.name}_{train_py.stem}"
    if str(train_py.parent) not in sys.path:
        sys.path.append(str(train_py.parent))  # a recipe's scripts may import each other
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, train_py)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up in sys.modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _resolve(module: Any, dotted: str) -> Any:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_recipe_configs_exist() -> None:
    files = _recipe_yaml_files()
    assert any(p.parts[-3] == "vocoder" for p in files), "recipes/vocoder/configs/*.yaml is missing"
    assert (REPO / "recipes/vocoder/configs/tiny.yaml").is_file()


@pytest.mark.parametrize(
    "yaml_path", _recipe_yaml_files(), ids=lambda p: f"{p.parts[-3]}/{p.name}"
)
def test_recipe_yaml_loads_into_dataclasses(yaml_path: Path) -> None:
    # configs of a second script in the same recipe are named after it: decoder_*.yaml -> train_decoder.py
    specific = yaml_path.parents[1] / f"train_{yaml_path.stem.split('_')[0]}.py"
    train_py = specific if specific.is_file() else yaml_path.parents[1] / "train.py"
    if not train_py.is_file():
        pytest.skip(f"{train_py.relative_to(REPO)} does not exist yet; cannot map sections to classes")
    module = _import_recipe(train_py)
    declared = getattr(module, "SECTIONS", None)
    if declared:
        classes = dict(declared)
    else:
        names = _section_classes(train_py)
        if not names:
            pytest.skip(
                f"{train_py.relative_to(REPO)} has no from_dict(Cls, raw.get('section')) calls "
                "and no SECTIONS mapping; cannot check its YAML"
            )
        classes = {section: _resolve(module, name) for section, name in names.items()}
    raw = load_yaml(yaml_path)
    unknown = sorted(set(raw) - set(classes))
    assert not unknown, f"{yaml_path.name}: section(s) {unknown} not read by {train_py.name}; read: {sorted(classes)}"
    for section, cls in classes.items():
        config = from_dict(cls, raw.get(section) or {}, section)
        # a loaded config survives the resolved-config round trip a run writes
        assert from_dict(cls, to_dict(config), section) == config


def test_vocoder_recipe_mapping_is_found() -> None:
    """Guards the generic check above: the vocoder recipe declares its five sections."""
    module = _import_recipe(REPO / "recipes/vocoder/train.py")
    from voicefake.train.loop import LoopConfig
    from voicefake.vocoder.training import TrainConfig

    assert set(module.SECTIONS) == {"model", "mel", "train", "loop", "data"}
    assert module.SECTIONS["train"] is TrainConfig and module.SECTIONS["loop"] is LoopConfig


def test_load_sections_is_strict(tmp_path: Path) -> None:
    """Unknown sections are errors; overrides apply; resolved dicts round-trip."""
    from voicefake.config import load_sections
    from voicefake.train.loop import LoopConfig

    path = tmp_path / "r.yaml"
    path.write_text("loop:\n  max_steps: 3\n")
    configs, resolved = load_sections(path, ["loop.batch_size=2"], {"loop": LoopConfig})
    assert configs["loop"].max_steps == 3 and configs["loop"].batch_size == 2
    assert resolved["loop"]["batch_size"] == 2
    path.write_text("loop: {}\nlopo: {}\n")
    with pytest.raises(ConfigError, match="lopo"):
        load_sections(path, [], {"loop": LoopConfig})


def test_a_recipe_config_error_is_one_line(tmp_path: Path) -> None:
    """A bad override ends a recipe with one line naming the problem and status 2, no traceback;
    VOICEFAKE_DEBUG=1 brings the traceback back."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(root / "recipes" / "vocoder" / "train.py"), "--config",
               str(root / "recipes" / "vocoder" / "configs" / "tiny.yaml"), "--run", str(tmp_path / "run"),
               "model.phase_iterations=-1"]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    env.pop("VOICEFAKE_DEBUG", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("train.py: error:") and "phase_iterations must be >= 0" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing half-made
    debug = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**env, "VOICEFAKE_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr
