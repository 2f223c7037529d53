"""The run directory: a new one, the interrupted one to resume, or a refusal.

A run directory holds ``config.yaml`` (the resolved config), ``backup/`` (Keras's
``BackupAndRestore`` state, made with the run directory and removed when the run ends, after
its cell settings and export, so present exactly while a run is unfinished, even before its
first epoch or after its last), ``checkpoints/``,
``logs/``
(TensorBoard), ``export/``, ``validation/`` (the held-out images and masks) and
``training_time.json`` (the training time of each finished epoch and the epoch length chosen
for a time limit, :mod:`keras_unet.training.time_budget`). Starting a run
in a directory that already holds one:

- the same config with a backup: the run was interrupted; it resumes there;
- a different config, or the same one finished: refused with :class:`FileExistsError`, unless
  ``overwrite``, which renames the earlier run to ``<dir>.replaced-<time>`` (nothing is deleted).

Without a given directory a run gets ``runs/<YYYYmmdd-HHMMSS>``, unless the newest of those
(by that name; runs you named are not among them) is an interrupted run of the same config:
then the same command resumes it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from pathlib import Path

import yaml

from keras_unet.errors import InputError, NotAFolderError, OutputExistsError
from keras_unet.io.atomic import faults_named, written_atomically
from keras_unet.training.config import TrainConfig

CONFIG_FILE = "config.yaml"
BACKUP_DIR = "backup"
TRAINING_TIME_FILE = "training_time.json"
RUNS_ROOT = Path("runs")
TIMESTAMPED = re.compile(r"\d{8}-\d{6}(?:-\d+)?")
"""The names of the run directories made without ``--run-dir``: ``YYYYmmdd-HHMMSS[-N]``."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Where a run writes, and whether it resumes an interrupted one.

    Attributes:
        path: the run directory.
        resume: True if it holds an interrupted run of the same config.
        replaced: where an earlier run was moved (``overwrite``), else None.

    Example:
        >>> RunDir(Path("runs/a"), resume=False).backup
        PosixPath('runs/a/backup')
    """

    path: Path
    resume: bool
    replaced: Path | None = None

    @property
    def backup(self) -> Path:
        """Folder of ``keras.callbacks.BackupAndRestore``."""
        return self.path / BACKUP_DIR

    @property
    def checkpoints(self) -> Path:
        """Folder of ``best.keras`` and ``last.keras``."""
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        """TensorBoard log folder (``tensorboard --logdir`` it)."""
        return self.path / "logs"

    @property
    def export(self) -> Path:
        """Folder of the model exported for serving."""
        return self.path / "export"

    @property
    def training_time(self) -> Path:
        """The run's training time (:class:`~keras_unet.training.time_budget.TrainingTime`)."""
        return self.path / TRAINING_TIME_FILE

    @property
    def validation(self) -> Path:
        """The held-out validation samples, as ``images/`` + ``masks/`` for predict/evaluate."""
        return self.path / "validation"


def prepare_run_dir(config: TrainConfig, *, overwrite: bool = False,
                    runs_root: str | os.PathLike = RUNS_ROOT,
                    now: datetime.datetime | None = None) -> RunDir:
    """Chooses the run directory, writes ``config.yaml`` there, and says whether to resume.

    Args:
        config: the run's config; ``config.run_dir`` is the directory, or None for a new
            ``<runs_root>/<timestamp>``.
        overwrite: move an earlier, different run in ``config.run_dir`` aside instead of
            refusing.
        runs_root: parent of the timestamped directories.
        now: the time that names a new directory (default: now).

    Returns:
        The :class:`RunDir`; its ``config.yaml`` holds ``config`` with ``run_dir`` filled in.

    Raises:
        FileExistsError: if ``config.run_dir`` holds a different or finished run, or other
            files, and ``overwrite`` is False.
        NotADirectoryError: if ``config.run_dir`` is a file.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> config = TrainConfig(run_dir=str(root / "run"))
        >>> prepare_run_dir(config).resume
        False
        >>> prepare_run_dir(config.replace(epochs=1))
        Traceback (most recent call last):
        ...
        keras_unet.errors.OutputExistsError: run dir '.../run' holds a different run (epochs: ...
    """
    now = now or datetime.datetime.now()
    if config.run_dir is None:
        path, resume = _default_run_dir(config, Path(runs_root), now)
        replaced = None
    else:
        path = Path(config.run_dir)
        resume, replaced = _check_given_run_dir(path, config, overwrite, now)
    with faults_named(path, "run dir"):  # a read-only or full disk: one line, exit code 1
        path.mkdir(parents=True, exist_ok=True)
        with written_atomically(path / CONFIG_FILE, overwrite=True) as temporary:
            temporary.write_text(config.replace(run_dir=str(path)).to_yaml())
        (path / BACKUP_DIR).mkdir(exist_ok=True)  # unfinished from the start: a kill resumes
    return RunDir(path, resume, replaced)


def read_run_config(path: Path) -> TrainConfig | None:
    """The config stored in a run directory, or None if it has none that parses.

    Example:
        >>> read_run_config(Path("no-such-run")) is None
        True
    """
    try:
        mapping = yaml.safe_load((path / CONFIG_FILE).read_text())
        return TrainConfig.from_mapping(mapping, source=str(path / CONFIG_FILE))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _differences(stored: TrainConfig, config: TrainConfig) -> list[str]:
    return [f"{field.name}: {getattr(stored, field.name)!r} there, {getattr(config, field.name)!r} "
            "now" for field in dataclasses.fields(config) if field.name != "run_dir"
            and getattr(stored, field.name) != getattr(config, field.name)]


def _is_interrupted(path: Path) -> bool:
    return (path / BACKUP_DIR).is_dir()


def _default_run_dir(config: TrainConfig, root: Path, now: datetime.datetime
                     ) -> tuple[Path, bool]:
    runs = sorted(p for p in root.glob("*") if TIMESTAMPED.fullmatch(p.name)
                  and (p / CONFIG_FILE).is_file()) if root.is_dir() else []
    if runs and _is_interrupted(runs[-1]):
        stored = read_run_config(runs[-1])
        if stored is not None and not _differences(stored, config):
            return runs[-1], True
    stem = now.strftime("%Y%m%d-%H%M%S")
    path = root / stem
    suffix = 1
    while path.exists():
        path = root / f"{stem}-{suffix}"
        suffix += 1
    return path, False


def _check_given_run_dir(path: Path, config: TrainConfig, overwrite: bool,
                         now: datetime.datetime) -> tuple[bool, Path | None]:
    if path.exists() and not path.is_dir():
        raise NotAFolderError(f"run dir {str(path)!r} exists and is not a folder.")
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise InputError(f"run dir {config.run_dir!r} is the current folder or holds it: give the "
                         "run a folder of its own (e.g. runs/mine).")
    if not path.exists() or not any(path.iterdir()):
        return False, None
    stored = read_run_config(path)
    if stored is None:
        problem = "is not empty and holds no keras_unet run (no readable config.yaml)"
    else:
        differences = _differences(stored, config)
        if not differences and _is_interrupted(path):
            return True, None
        problem = (f"holds a different run ({'; '.join(differences[:3])})" if differences
                   else "holds a finished run of the same config")
    aside = path.with_name(f"{path.name}.replaced-{now.strftime('%Y%m%d-%H%M%S')}")
    if not overwrite:
        raise OutputExistsError(f"run dir {str(path)!r} {problem}; choose another --run-dir, or "
                                f"pass --overwrite (train's overwrite=True) to move it aside "
                                f"to {str(aside)!r}.")
    os.rename(path, aside)
    return False, aside
