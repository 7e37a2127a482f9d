"""Checkpoints that never lose work: atomic saves, safe loads, and models rebuilt by name.

A checkpoint is a plain dict written with ``torch.save``:

=============  ===========================================================================================
``format``     ``"resnet_course.checkpoint/1"``
``model``      ``{"name", "kwargs"}`` from :func:`resnet_course.models.registry.model_config` (``None`` when the
               model was not built with ``create``; loading then needs the caller's model)
``state_dict`` the model weights
``optimizer``, ``scheduler``, ``scaler``, ``swa``  training state for exact resume (may be ``None``)
``epoch``      completed epochs
``history``    :class:`resnet_course.training.history.History` as a dict
``config``     :class:`resnet_course.training.config.TrainConfig` as a dict
``rng``        Python / NumPy / PyTorch random states
``classes``    class names; ``preprocess``: ``{"image_size", "mean", "std"}``
``metrics``    e.g. ``{"test_accuracy": 0.91}``; ``meta``: anything else (e.g. which dataset was used)
=============  ===========================================================================================

Saving writes a temporary file in the same folder and renames it over the target with ``os.replace``, so a
crash or Ctrl-C during a save leaves the previous file intact. Loading uses ``torch.load(weights_only=True)``
(no arbitrary code runs) and every problem is a :class:`CheckpointError` with one line naming the file.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_course.atomic import write_atomically
from resnet_course.models.registry import create, list_models, model_config

__all__ = [
    "FORMAT",
    "CheckpointError",
    "make_checkpoint",
    "save_checkpoint",
    "save_checkpoint_to",
    "read_checkpoint",
    "load_checkpoint",
    "load_weights",
    "update_checkpoint",
    "checkpoint_problem",
]

FORMAT = "resnet_course.checkpoint/1"
_REQUIRED = ("state_dict", "epoch")


class CheckpointError(ValueError):
    """A checkpoint could not be read or used; the message is one line naming the file and the problem."""


def _state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def make_checkpoint(
    model: nn.Module,
    *,
    optimizer: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    scaler: dict[str, Any] | None = None,
    swa: dict[str, Any] | None = None,
    epoch: int = 0,
    history: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    rng: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    preprocess: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict for ``model`` (weights copied to CPU, contiguous) and the given training state."""
    try:
        model_cfg: dict[str, Any] | None = model_config(model)
    except ValueError:
        model_cfg = None
    return {
        "format": FORMAT,
        "model": model_cfg,
        "state_dict": _state_dict_cpu(model),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "swa": swa,
        "epoch": int(epoch),
        "history": history,
        "config": config,
        "rng": rng,
        "classes": list(classes) if classes is not None else None,
        "preprocess": preprocess,
        "metrics": dict(metrics or {}),
        "meta": meta,
    }


def save_checkpoint(checkpoint: dict[str, Any] | nn.Module, path: str | Path, **parts: Any) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    ``checkpoint`` is a dict from :func:`make_checkpoint`, or a model (then ``parts`` go to
    :func:`make_checkpoint`, e.g. ``save_checkpoint(model, "m.pt", classes=names, preprocess=pre)``).
    If anything fails — including Ctrl-C — the temporary file is removed and an existing ``path`` is untouched.
    """
    if isinstance(checkpoint, nn.Module):
        checkpoint = make_checkpoint(checkpoint, **parts)
    elif parts:
        raise TypeError(
            "extra keyword arguments are only accepted when saving a model, not a checkpoint dict"
        )
    return write_atomically(Path(path), lambda f: torch.save(checkpoint, f))


def save_checkpoint_to(checkpoint: dict[str, Any], paths: Sequence[str | Path]) -> list[Path]:
    """Serialise ``checkpoint`` once and write the same bytes to every path in ``paths``, each atomically (as
    :func:`save_checkpoint`); e.g. ``last.pt`` and ``best.pt`` of an epoch that improved."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return [write_atomically(Path(path), lambda f: f.write(buffer.getbuffer())) for path in paths]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict stored at ``path`` (tensors on CPU), validated; raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a folder, not a checkpoint file (did you mean {path / 'best.pt'}?)"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted copy?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():
            raise CheckpointError(
                f"{path}: contains Python objects that a safe load refuses; it was not written by resnet_course"
            ) from None
        raise CheckpointError(f"{path}: corrupt or truncated, not a readable PyTorch checkpoint") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: corrupt or truncated, not a readable PyTorch checkpoint ({_first_line(e)})"
        ) from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(
            f"{path}: a PyTorch file but not a resnet_course checkpoint (no 'format' entry); for a bare "
            "state_dict build the model yourself and call model.load_state_dict(torch.load(path))"
        )
    if ckpt["format"] != FORMAT:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {ckpt['format']!r} (this version reads {FORMAT!r})"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return ckpt


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _describe(cfg: dict[str, Any] | None) -> str:
    if not cfg:
        return "an unnamed model"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.get("kwargs", {}).items()))
    return f"{cfg['name']}({kwargs})"


def load_weights(model: nn.Module, checkpoint: dict[str, Any], path: str | Path = "<checkpoint>") -> None:
    """Copy the checkpoint's weights into ``model``; a mismatch, or a weight that is NaN or infinite, raises a
    one-line :class:`CheckpointError`."""
    _check_fits(model, checkpoint, path)
    state = checkpoint["state_dict"]
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"{path}: holds weights that are not finite numbers (NaN or inf, e.g. in {bad}): a run that diverged or a "
            "damaged file; it cannot classify anything. Use another checkpoint (or retrain)"
        )
    model.load_state_dict(state)


def _check_fits(model: nn.Module, checkpoint: dict[str, Any], path: str | Path) -> None:
    state = checkpoint["state_dict"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        try:
            given = _describe(model_config(model))
        except ValueError:
            given = type(model).__name__
        details = []
        if shapes:
            details.append(f"shape mismatch {', '.join(shapes[:2])}" + (" ..." if len(shapes) > 2 else ""))
        if missing:
            details.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{path}: a checkpoint for {_describe(checkpoint.get('model'))}, which does not fit the given "
            f"model {given}: {'; '.join(details)}"
        )


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", *, model: nn.Module | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (from its registry name and kwargs), load its weights, put it in
    eval mode on ``device``, and return ``(model, checkpoint_dict)``.

    Pass ``model`` to load into your own instance instead (needed when the checkpoint's model was not built
    with ``create``); its architecture must match. Every failure is a :class:`CheckpointError`.
    """
    ckpt = read_checkpoint(path)
    if model is None:
        cfg = ckpt.get("model")
        if not cfg:
            raise CheckpointError(
                f"{path}: does not record how to build its model (it was not made with "
                "resnet_course.models.registry.create); pass model=<an instance of the same architecture>"
            )
        if cfg.get("name") not in list_models():
            raise CheckpointError(
                f"{path}: made for model {cfg.get('name')!r}, which this version of resnet_course does not know"
            )
        try:  # first without memory (the meta device): settings such as num_classes=10**9 must fit the weights
            with torch.device("meta"):
                probe = create(cfg["name"], **cfg.get("kwargs", {}))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot rebuild {_describe(cfg)}: {_first_line(e)}") from None
        _check_fits(probe, ckpt, path)
        model = create(cfg["name"], **cfg.get("kwargs", {}))
    load_weights(model, ckpt, path)
    model.to(device).eval()
    return model, ckpt


def update_checkpoint(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Read ``path``, update top-level entries (``metrics`` is merged, not replaced), save atomically."""
    ckpt = read_checkpoint(path)
    for key, value in changes.items():
        if key == "metrics":
            ckpt["metrics"] = {**(ckpt.get("metrics") or {}), **value}
        else:
            ckpt[key] = value
    save_checkpoint(ckpt, path)
    return ckpt


def checkpoint_problem(path: str | Path, classes: Sequence[str], image_size: int) -> str | None:
    """Why the checkpoint at ``path`` cannot serve a dataset with ``classes`` and ``image_size``-pixel
    images, as one line; ``None`` when it can.

    Checked in this order: the file exists; it reads as a resnet_course checkpoint (the
    :class:`CheckpointError` message of :func:`read_checkpoint` otherwise); its stored class names equal
    ``classes`` (same names, same order); its ``preprocess["image_size"]`` equals ``image_size``.
    The weights are not loaded into a model, so an architecture mismatch is only found by
    :func:`load_checkpoint`.
    """
    path = Path(path)
    if not path.exists():
        return f"there is no checkpoint at {path}"
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:
        return str(err)
    stored = list(ckpt.get("classes") or [])
    if stored != list(classes):
        if not stored:
            return f"{path} does not record its class names, so it cannot be matched to a dataset"
        return (
            f"{path} was trained on other classes ({len(stored)}: {', '.join(stored[:3])}"
            f"{', …' if len(stored) > 3 else ''}) than the dataset's ({len(classes)}: "
            f"{', '.join(list(classes)[:3])}{', …' if len(classes) > 3 else ''})"
        )
    stored_size = (ckpt.get("preprocess") or {}).get("image_size")
    if stored_size != image_size:
        return f"{path} expects {stored_size} px images, the dataset has {image_size} px images"
    return None
