"""Image folders larger than memory: the streamed path gives the in-memory path's parts, statistics and batches
(same plan, same shards), is chosen from a memory budget, keeps memory bounded while training, and works from
the command line. Every folder is written by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnet_course.apps import cli
from resnet_course.data.containers import ImageTensors
from resnet_course.data.imagefolder import write_image_folder
from resnet_course.data.images import ImageError
from resnet_course.data.loaders import TensorLoader
from resnet_course.data.loading import load_data
from resnet_course.data.streaming import ImageFiles, StreamLoader, list_image_files, storage_choice
from resnet_course.training.checkpoints import read_checkpoint

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
REPO = Path(__file__).resolve().parents[1]


def _folder(root: Path, n: int = 60, size: int = 16, classes: int = 3, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    names = [f"c{i}" for i in range(classes)]
    return write_image_folder(ImageTensors(images, torch.arange(n) % classes, names), root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("stream") / "folder")


@pytest.fixture(scope="module")
def both(folder: Path):
    """The same folder loaded in memory and streamed (same seed and splits)."""
    kwargs = {"image_size": 16, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 3, "num_workers": 0}
    return load_data(folder, stream=False, **kwargs), load_data(folder, stream=True, **kwargs)


def test_streamed_parts_statistics_and_images_equal_the_in_memory_ones(both) -> None:
    memory, streamed = both
    assert not memory.streamed and streamed.streamed
    for name in ("train", "val", "test"):
        m, s = getattr(memory, name), getattr(streamed, name)
        assert isinstance(m, ImageTensors) and isinstance(s, ImageFiles)
        assert torch.equal(m.labels, s.labels) and m.classes == s.classes
        assert torch.equal(m.images, s.load().images)  # same files, same order, same prepare_image
    assert memory.image_size == streamed.image_size == 16
    assert streamed.mean == pytest.approx(memory.mean, abs=1e-12)
    assert streamed.std == pytest.approx(memory.std, abs=1e-12)
    assert "streamed from disk" in streamed.summary() and "stream" not in memory.summary()
    assert memory.preprocess == {"image_size": 16, "mean": list(memory.mean), "std": list(memory.std)}


def _pairs(a, b, epochs=(0, 1)) -> int:
    n = 0
    for epoch in epochs:
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for (x, y), (sx, sy) in zip(a, b, strict=True):
            assert torch.equal(x, sx) and torch.equal(y, sy), f"epoch {epoch}, batch {n}"
            n += 1
    return n


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augmented"])
@pytest.mark.parametrize("rank, world_size", [(0, 1), (0, 2), (1, 2)], ids=["1proc", "rank0of2", "rank1of2"])
def test_stream_loader_yields_the_tensor_loader_batches(both, augment, rank, world_size) -> None:
    memory, streamed = both
    options = {
        "mean": MEAN,
        "std": STD,
        "shuffle": True,
        "augment": augment,
        "device": "cpu",
        "seed": 5,
        "rank": rank,
        "world_size": world_size,
    }
    tensor = TensorLoader(memory.train, 8, **options)
    stream = StreamLoader(streamed.train, 8, num_workers=0, **options)
    assert len(stream) == len(tensor) and stream.batches()[-1].tolist() == tensor.batches()[-1].tolist()
    assert _pairs(tensor, stream) == 2 * len(tensor)
    for name in ("test", "val"):  # evaluation shards: each image once over the processes
        evaluation = {"mean": MEAN, "std": STD, "device": "cpu", "rank": rank, "world_size": world_size}
        plain = TensorLoader(getattr(memory, name), 5, **evaluation)
        _pairs(plain, StreamLoader(getattr(streamed, name), 5, num_workers=0, **evaluation), epochs=(0,))


def test_decoding_workers_keep_the_order_and_bundle_loaders_stream(both) -> None:
    from resnet_course.training.config import TrainConfig

    memory, streamed = both
    config = TrainConfig(batch_size=8, seed=2, device="cpu", channels_last=True)
    tl, vl, te = memory.loaders(config, eval_batch_size=6)
    sl, sv, st = streamed.loaders(config, eval_batch_size=6, num_workers=2)
    assert all(isinstance(loader, StreamLoader) and loader.num_workers == 2 for loader in (sl, sv, st))
    assert (sl.shuffle, sl.augment, sl.seed, sv.shuffle, st.batch_size) == (True, True, 2, False, 6)
    assert _pairs(tl, sl) == 2 * len(tl)
    _pairs(te, st, epochs=(0,))
    x, _ = next(iter(sl))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert "num_workers=2" in repr(sl)
    with pytest.raises(TypeError, match="ImageFiles"):
        StreamLoader(memory.train, 8, mean=MEAN, std=STD)


_SPAWNED = """
import multiprocessing
import sys

import torch

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)  # the default on macOS and Windows
    from resnet_course.data.loading import load_data
    from resnet_course.training.config import TrainConfig

    folder, out = sys.argv[1], sys.argv[2]
    kwargs = {"image_size": 16, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 3}
    bundle, config = load_data(folder, stream=True, num_workers=0, **kwargs), TrainConfig(batch_size=8, seed=2, device="cpu")
    _, _, test = bundle.loaders(config, num_workers=0)
    train, _, _ = bundle.loaders(config, num_workers=1)  # one spawned worker (the test loader's would cost another)
    train.set_epoch(0)
    torch.save({"train": list(train), "test": list(test), "mean": bundle.mean}, out)
"""


def test_streaming_with_a_decoding_worker_works_under_the_spawn_start_method(
    both, tmp_path: Path, folder: Path
):
    """macOS and Windows start worker processes with ``spawn`` (a fresh interpreter that must import and unpickle
    everything it needs): the streamed loaders, a decoding worker included, give the in-memory batches there too."""
    from resnet_course.training.config import TrainConfig

    script, out = tmp_path / "spawned.py", tmp_path / "batches.pt"
    script.write_text(_SPAWNED)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(folder), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spawned = torch.load(out)
    memory, _ = both
    train, _, test = memory.loaders(TrainConfig(batch_size=8, seed=2, device="cpu"))
    train.set_epoch(0)
    assert tuple(spawned["mean"]) == pytest.approx(tuple(memory.mean), rel=1e-9)
    for name, loader in (("train", train), ("test", test)):
        expected = list(loader)
        assert len(spawned[name]) == len(expected) > 0, name
        for (x, y), (sx, sy) in zip(expected, spawned[name], strict=True):
            assert torch.equal(x, sx) and torch.equal(y, sy), name


def test_the_automatic_choice_follows_the_memory_limit_and_says_why(folder: Path) -> None:
    decoded = 60 * 3 * 16 * 16  # 46 080 bytes
    kwargs = {"image_size": 16, "num_workers": 0}
    small = load_data(folder, memory_limit=decoded - 1, **kwargs)
    assert small.streamed
    assert small.storage == "streamed from disk: 60 files × 3×16×16 = 46.1 kB > memory budget 46.1 kB"
    large = load_data(folder, memory_limit=decoded, **kwargs)
    assert (
        not large.streamed
        and large.storage.startswith("in memory: 60 files")
        and "≤ memory budget" in large.storage
    )
    assert not load_data(folder, stream=False, memory_limit=1, **kwargs).streamed  # forced
    forced = load_data(folder, stream=True, memory_limit=10**12, **kwargs)
    assert forced.streamed and forced.storage.endswith("(stream=True)")
    assert not load_data(folder, **kwargs).streamed  # default budget: a share of the memory available
    assert storage_choice(3000, 64, None, 20 * 10**6)[1] == (
        "streamed from disk: 3,000 files × 3×64×64 = 36.9 MB > memory budget 20.0 MB"
    )
    with pytest.raises(ValueError, match="only an ImageFolder"):
        load_data("shapes10", stream=True, train_size=20, test_size=10)


def test_unreadable_files_are_skipped_at_listing_as_in_memory_or_named_when_met(tmp_path: Path) -> None:
    root = _folder(tmp_path / "bad", n=24)
    (root / "c0" / "notes.txt").write_text("not an image")
    truncated = root / "c1" / "00001.png"  # its header reads, its pixels do not
    truncated.write_bytes(truncated.read_bytes()[:60])
    for workers in (0, 1):  # decoded in this process or in a worker: the same two files named
        with pytest.warns(UserWarning, match="2 file") as caught:
            files = list_image_files(root, 16, num_workers=workers)
        assert "notes.txt" in str(caught[0].message) and "00001.png" in str(caught[0].message)
        assert len(files) == 23 and str(truncated) not in files.paths
    with pytest.raises(ValueError, match="00001.png"):
        list_image_files(root, 16, on_bad_file="raise", num_workers=0)
    kwargs = {"image_size": 16, "val_fraction": 0.25, "test_fraction": 0.25, "seed": 1, "num_workers": 0}
    with pytest.warns(UserWarning) as in_memory_warning:
        in_memory = load_data(root, stream=False, **kwargs)
    with pytest.warns(UserWarning) as streamed_warning:
        streamed = load_data(root, stream=True, **kwargs)
    assert str(in_memory_warning[0].message) == str(streamed_warning[0].message)
    assert "2 of the 25 files are not usable images (skipped)" in streamed.storage
    for name in ("train", "val", "test"):  # the same files kept, hence the same split
        assert torch.equal(getattr(streamed, name).load().images, getattr(in_memory, name).images)
    (root / "c0" / "notes.txt").unlink()
    listed = list_image_files(root, 16, check=False)  # a file spoilt after the listing ...
    for workers in (0, 1):  # ... is named by the batch that meets it, from a worker too
        loader = StreamLoader(listed, 4, mean=MEAN, std=STD, device="cpu", num_workers=workers)
        with pytest.raises(ImageError, match="00001.png: cannot be read as an image") as info:
            list(loader)
        assert "Traceback" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Peak memory while training one epoch
# --------------------------------------------------------------------------------------------------

_EPOCH = textwrap.dedent(
    """
    import json, resource, sys
    import sklearn.model_selection, torch, torchvision.datasets  # imported before the measurement starts
    from PIL import Image
    from torch import nn
    from resnet_course.data.loading import load_data
    from resnet_course.training.config import TrainConfig
    from resnet_course.training.engine import fit

    torch.set_num_threads(1)
    Image.init()
    folder, size = sys.argv[1], int(sys.argv[2])
    decoded = sum(1 for p in __import__("pathlib").Path(folder).rglob("*.png")) * 3 * size * size

    def peak(who=resource.RUSAGE_SELF):
        # peak RSS in bytes: VmHWM (which writing 5 to clear_refs resets), else getrusage's (kB on Linux)
        try:
            if who == resource.RUSAGE_SELF:
                status = open("/proc/self/status").read()
                return int(status.split("VmHWM:")[1].split()[0]) * 1024
        except (OSError, IndexError, ValueError):
            pass
        return resource.getrusage(who).ru_maxrss * 1024

    # tiny on purpose: a model that pools first keeps training's own memory small, so the images show
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 4))
    config = TrainConfig(epochs=1, batch_size=16, device="cpu", channels_last=False)
    def reset_peak():  # Linux: "5" resets the high-water mark that VmHWM reports
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # then the imports' peak may hide some growth; the control shows whether it still sees it

    reset_peak()  # forget the peak of the imports
    base = peak()
    bundle = load_data(folder, image_size=size, val_fraction=0, test_fraction=0.05, num_workers=2, stream=None,
                       memory_limit=decoded // 10)
    train, _, _ = bundle.loaders(config, num_workers=2)
    history = fit(model, train, None, config, progress=False)
    trained = peak()
    # the control: the same measurement, restarted, must see the folder's decoded size when that much is used
    reset_peak()
    before_control = peak()
    folder_sized = torch.ones(decoded, dtype=torch.uint8)
    print(json.dumps({"decoded": decoded, "base": base, "self": trained, "children": peak(resource.RUSAGE_CHILDREN),
                      "control": peak() - before_control, "streamed": bundle.streamed, "storage": bundle.storage,
                      "epochs": len(history)}))
    """
)


def _epoch_memory(folder: Path, size: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _EPOCH, str(folder), str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        # a fixed mmap threshold: glibc returns freed batches to the system, so RSS follows live memory rather
        # than the allocator's fragmentation (with its default dynamic threshold RSS drifts by 100+ MB)
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "MALLOC_MMAP_THRESHOLD_": "65536",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_streaming_memory_is_bounded_by_batches_not_by_the_folder(tmp_path: Path) -> None:
    """2 000 small PNGs decoded at 160 px are 154 MB of uint8 images. Trained for one epoch on a memory
    budget of a tenth of that, the process grows by a few batches (16 images: 1.2 MB as uint8, 4.9 MB as
    float32; measured ≈ 30 MB with the fixed costs) and its decoding workers stay below where the parent started;
    the same measurement sees the folder's size when the process then fills that much memory. (Decoding the folder
    into memory instead, with ``stream=False``, grew the process by 2.5 GB: the float copies.)"""
    root = tmp_path / "big"
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    tiles = torch.randint(0, 256, (2000, 8, 8, 3), generator=g, dtype=torch.uint8).numpy()
    for i, tile in enumerate(tiles):
        Image.fromarray(tile).resize((32, 32)).save(root / f"c{i % 4}" / f"{i:05d}.png", compress_level=1)
    streamed = _epoch_memory(root, 160)
    decoded = streamed["decoded"]
    assert decoded == 2000 * 3 * 160 * 160 and streamed["streamed"] and streamed["epochs"] == 1
    assert "> memory budget" in streamed["storage"]
    growth = streamed["self"] - streamed["base"]
    workers = streamed["children"] - streamed["base"]
    print(
        f"peak RSS growth: streamed {growth / 1e6:.1f} MB (workers {workers / 1e6:.1f} MB above the "
        f"parent's start), the control {streamed['control'] / 1e6:.1f} MB; decoded size {decoded / 1e6:.1f} MB"
    )
    assert streamed["control"] > 0.9 * decoded  # the measurement sees a folder's worth of memory ...
    assert growth < 0.4 * decoded  # ... and streaming keeps a few batches only
    assert workers < 0.4 * decoded


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_cli_train_stream_writes_checkpoints_that_evaluate_loads(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path / "cli", n=48, size=32, classes=2)
    notes = next(root.iterdir()) / "notes.txt"
    notes.write_text("not an image")  # skipped on both paths, and named on one line
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet20", "--data", str(root), "--epochs", "1", "--out", str(out)]
    code = cli.main([*argv, "--batch-size", "16", "--stream", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "data: streamed from disk: 49 files × 3×32×32" in captured.err
    assert "; 1 of the 49 files are not usable images (skipped)" in captured.err
    warning = f"warning: 1 file(s) in {root} are not readable images: {notes}: cannot be read as an image"
    assert warning in captured.err
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["meta"]["data"]["stream"] is True and ckpt["preprocess"]["image_size"] == 32
    code = cli.main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(root), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert warning in captured.err and captured.err.count("\n") == 1  # in memory, the same one line
    assert result["n"] == 10  # the seeded 20 % test split of 48 files, as in training
    assert result["accuracy"] == pytest.approx(ckpt["metrics"]["test_accuracy"])
    code = cli.main(
        ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(root), "--json", "--stream"]
    )
    captured = capsys.readouterr()
    assert code == 0 and "data: streamed from disk" in captured.err
    assert json.loads(captured.out)["accuracy"] == pytest.approx(result["accuracy"])
