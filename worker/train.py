"""Training NLU and Core models from files: the one entry point of ``dialogd train``,
``dialogd train nlu`` and the trainer process (``POST /train``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.model import CoreModel
from worker.model import Progress
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.nlu.training_data import NLUData
from worker.yamlfile import read_yaml

NLU_KEYS = ("language", "pipeline")
CORE_KEYS = ("policies", "policy")


def read_config(path: str | Path | None) -> dict[str, Any]:
    """One YAML for both models: ``pipeline:`` (NLU) and ``policies:`` (Core)."""
    if path is None:
        return {}
    data = read_yaml(str(path)).data or {}
    if not isinstance(data, dict):
        raise InvalidConfig(f"{path}: the config must be a mapping")
    return data


def split_config(
    config: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The NLU part (``language``, ``pipeline``) and the Core part (``policies``)
    of one config; None for a part it does not set (its defaults apply)."""
    config = config or {}
    nlu = {k: v for k, v in config.items() if k in NLU_KEYS}
    core = {k: v for k, v in config.items() if k in CORE_KEYS}
    return nlu or None, core or None


@dataclass
class Trained:
    """What :func:`train_models` wrote into ``out``."""

    core: CoreModel | None = None
    nlu: NLUPipeline | None = None
    nlu_examples: int = 0
    nlu_intents: int = 0


def train_nlu(
    out: Path,
    config: Mapping[str, Any] | None,
    nlu: str | Path,
    progress: Progress | None = None,
    *,
    lookup_files: bool = False,
) -> Trained:
    """An NLU model trained on the data in ``nlu``, written to ``out``; lookup
    tables may name files only when ``lookup_files`` (the CLI, not HTTP data)."""
    data = load_nlu_data(nlu, lookup_files=lookup_files)
    return _fit_nlu(out, config, data, progress)


def _fit_nlu(
    out: Path,
    config: Mapping[str, Any] | None,
    data: NLUData,
    progress: Progress | None,
) -> Trained:
    nlu_config, _ = split_config(config)
    if progress is not None:
        progress(f"training NLU on {len(data.examples)} examples", 0, 0)
    pipeline = NLUPipeline(nlu_config).fit(data)
    pipeline.save(out)
    return Trained(
        nlu=pipeline, nlu_examples=len(data.examples), nlu_intents=len(data.intents)
    )


def train_models(
    out: Path,
    config: Mapping[str, Any] | None = None,
    *,
    nlu: str | Path | None = None,
    domain: str | Path | None = None,
    stories: str | Path | None = None,
    augmentation_factor: int = 20,
    progress: Progress | None = None,
    lookup_files: bool = False,
) -> Trained:
    """Train an NLU model from ``nlu`` into ``out/nlu`` and a Core model from
    ``domain`` and ``stories`` into ``out/core``, whichever are given."""
    _, core_config = split_config(config)
    trained = Trained()
    data = load_nlu_data(nlu, lookup_files=lookup_files) if nlu is not None else None
    bot = Domain.load(domain) if domain is not None else None
    if bot is not None and data is not None:
        # NOTE: as Rasa's importer: responses in data files join the domain, and
        # the response selector reports the retrieval intents' responses.
        bot = bot.with_responses(data.responses, str(nlu))
        data = replace(
            data,
            responses={k: v for k, v in bot.templates.items() if "/" in k},
        )
    if data is not None:
        if data.examples or domain is None:
            trained = _fit_nlu(out / "nlu", config, data, progress)
        elif progress is not None:
            # NOTE: as rasa train: a project without NLU data trains Core only,
            # and its server understands /intent{...} messages.
            progress("no NLU data: a Core model only", 0, 0)
    if bot is not None:
        if stories is None:
            raise InvalidConfig("a Core model needs stories beside its domain")
        trained.core = CoreModel.train(
            bot,
            stories,
            core_config,
            augmentation_factor=augmentation_factor,
            progress=progress,
        )
        trained.core.save(out / "core")
    return trained


# ---- a Rasa project folder ---------------------------------------------------------
#: Where ``dialogd train`` and ``dialogd serve`` look for models, as Rasa does.
MODELS_DIR = "models"
DOMAIN_NAMES = ("domain.yml", "domain.yaml", "domain")
CONFIG_NAMES = ("config.yml", "config.yaml")


@dataclass(frozen=True)
class Project:
    """The files of a Rasa project folder (``rasa init``'s layout); None for one
    the folder does not have."""

    root: Path
    domain: Path | None
    config: Path | None
    data: Path | None


def find_project(root: str | Path = ".") -> Project:
    """``domain.yml`` (or a ``domain/`` folder), ``config.yml`` and ``data/``."""
    base = Path(root)

    def first(names: tuple[str, ...]) -> Path | None:
        return next((base / n for n in names if (base / n).exists()), None)

    data = base / "data"
    return Project(
        base, first(DOMAIN_NAMES), first(CONFIG_NAMES), data if data.is_dir() else None
    )


def new_model_dir(models: str | Path, name: str | None = None) -> Path:
    """``models/NAME``, or a timestamped ``models/20261203-145512`` as Rasa names
    its models (``-2``, ``-3``... when two trainings share a second)."""
    base = Path(models)
    stem = name or time.strftime("%Y%m%d-%H%M%S")
    path, n = base / stem, 1
    while name is None and path.exists():
        n += 1
        path = base / f"{stem}-{n}"
    return path


def is_model_dir(path: Path) -> bool:
    return (path / "core").is_dir()


def newest_model(path: str | Path = MODELS_DIR) -> Path:
    """``path`` itself when it is a model (``core/`` and maybe ``nlu/``), else the
    most recently trained model below it, as ``rasa run`` picks one."""
    base = Path(path)
    if is_model_dir(base):
        return base
    if not base.is_dir():
        raise ModelError(f"no model at {base}: train one with 'dialogd train'")
    found = [p for p in base.iterdir() if p.is_dir() and is_model_dir(p)]
    if not found:
        raise ModelError(f"no trained model in {base}: train one with 'dialogd train'")
    return max(found, key=lambda p: ((p / "core").stat().st_mtime, p.name))
