"""Tests of resnet_course.data on tiny datasets written in the real on-disk formats."""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils  # noqa: F401  (imported up front: the timing tests measure the network only)

from resnet_course.data.cifar10 import CIFAR10_CLASSES, CIFAR10_TARBALL, CIFAR10_URL, load_cifar10
from resnet_course.data.containers import CorruptDatasetError, DatasetUnavailableError, ImageTensors
from resnet_course.data.imagefolder import load_imagefolder
from resnet_course.data.loading import load_data
from resnet_course.data.statistics import (
    compute_mean_std,
    mean_per_image_std,
    stratified_split,
    stratified_subset,
)

# ---------------------------------------------------------------------------------------------- CIFAR-10


def test_load_cifar10_reads_the_pickled_batches(tiny_cifar):
    train, test = load_cifar10(tiny_cifar.root, download=False)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (30, 3, 32, 32)
    assert train.classes == CIFAR10_CLASSES
    assert torch.equal(train.images, torch.from_numpy(tiny_cifar.train_images))
    assert torch.equal(train.labels, torch.from_numpy(tiny_cifar.train_labels))
    assert torch.equal(test.images, torch.from_numpy(tiny_cifar.test_images))
    # the label is painted into each image: image/label pairing survives the reading
    assert torch.equal(train.images[:, 0, 0, 0].long(), train.labels)


def test_load_data_cifar10_split_subset_and_stats(tiny_cifar_root):
    bundle = load_data("cifar10", tiny_cifar_root, val_fraction=0.2, seed=3, download=False)
    assert bundle.name == "cifar10" and bundle.notice == ""
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (80, 20, 30)
    assert bundle.val.class_counts() == dict.fromkeys(CIFAR10_CLASSES, 2)  # stratified: two per class
    assert bundle.mean == pytest.approx(compute_mean_std(bundle.train)[0])
    assert bundle.std == pytest.approx(compute_mean_std(bundle.train)[1])
    assert bundle.preprocess == {"image_size": 32, "mean": list(bundle.mean), "std": list(bundle.std)}
    again = load_data("cifar10", tiny_cifar_root, val_fraction=0.2, seed=3, download=False)
    assert torch.equal(again.val.images, bundle.val.images)

    small = load_data("cifar10", tiny_cifar_root, val_fraction=0, train_size=20, test_size=10, download=False)
    assert small.val is None
    assert set(small.train.class_counts().values()) == {2}
    assert set(small.test.class_counts().values()) == {1}


def test_missing_cifar10_without_download_explains_what_to_do(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10(tmp_path, download=False)
    message = str(info.value)
    assert time.perf_counter() - start < 2
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert CIFAR10_URL in message and "tar -xzf" in message
    assert "shapes10" in message


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections but never answers (a stalled network)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def test_offline_download_fails_within_seconds(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr("resnet_course.data.cifar10.CIFAR10_URL", f"http://127.0.0.1:{silent_server}/cifar-10-python.tar.gz")
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar10(tmp_path, download=True, timeout=0.5)
    assert time.perf_counter() - start < 6
    assert "downloading it failed" in str(info.value)
    assert "shapes10" in str(info.value)


def test_unreachable_host_fails_fast(tmp_path, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more: connection refused
    monkeypatch.setattr("resnet_course.data.cifar10.CIFAR10_URL", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError):
        load_cifar10(tmp_path, download=True, timeout=1)
    assert time.perf_counter() - start < 3


def test_fallback_to_shapes10_with_a_loud_notice(tmp_path, monkeypatch):
    bundle = load_data("cifar10", tmp_path, download=False, fallback=True, train_size=100, test_size=50)
    assert bundle.name == "shapes10"
    assert "CIFAR-10" in bundle.notice and "shapes10" in bundle.notice and "NOT comparable" in bundle.notice
    assert len(bundle.train) + len(bundle.val) == 100 and len(bundle.test) == 50
    assert "NOTICE" in str(bundle)


def test_truncated_batch_is_reported_as_corrupt(tiny_cifar_root):
    path = tiny_cifar_root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CorruptDatasetError) as info:
        load_cifar10(tiny_cifar_root, download=False)
    assert "data_batch_3" in str(info.value) and "corrupted" in str(info.value)
    assert "re-download" in str(info.value)


def test_wrong_content_and_meta_are_reported_as_corrupt(tiny_cifar_root):
    import pickle

    folder = tiny_cifar_root / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]}, f)
    with pytest.raises(CorruptDatasetError, match="test_batch"):
        load_cifar10(tiny_cifar_root, download=False)
    (folder / "batches.meta").write_bytes(b"garbage")
    with pytest.raises(CorruptDatasetError, match="batches.meta"):
        load_cifar10(tiny_cifar_root, download=False)


def test_corrupt_archive_is_reported_as_corrupt(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    (tmp_path / CIFAR10_TARBALL).write_bytes(b"not a tarball at all")
    monkeypatch.setattr(tvu, "check_integrity", lambda path, md5=None: True)  # pretend the md5 matched
    with pytest.raises(CorruptDatasetError, match="could not be extracted"):
        load_cifar10(tmp_path, download=True)


def test_checksum_mismatch_after_download_is_reported_as_corrupt(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def fake_download(url, root, filename=None, md5=None):
        Path(root, filename).write_bytes(b"truncated")
        raise RuntimeError("File not found or corrupted.")  # what torchvision raises on an md5 mismatch

    monkeypatch.setattr("resnet_course.data.cifar10.check_reachable", lambda url, timeout: None)
    monkeypatch.setattr(tvu, "download_url", fake_download)
    with pytest.raises(CorruptDatasetError, match="archive .* is corrupted"):
        load_cifar10(tmp_path, download=True)


def test_default_root_is_the_data_dir(monkeypatch, tmp_path):
    from conftest import write_tiny_cifar

    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    write_tiny_cifar(tmp_path)
    bundle = load_data("cifar10", download=False)
    assert bundle.root == str(tmp_path)


# ---------------------------------------------------------------------------------------------- statistics


def test_compute_mean_std_known_values():
    images = torch.stack(
        [torch.zeros(3, 4, 4, dtype=torch.uint8), torch.full((3, 4, 4), 255, dtype=torch.uint8)]
    )
    mean, std = compute_mean_std(images)
    assert mean == pytest.approx((0.5, 0.5, 0.5))
    assert std == pytest.approx((0.5, 0.5, 0.5))
    # each image is constant: its own std is 0, so the average per-image std is 0 while the dataset std is 0.5
    assert mean_per_image_std(images) == pytest.approx((0.0, 0.0, 0.0))


def test_compute_mean_std_matches_torch_over_all_pixels():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    images[:, 1] //= 2
    x = images.double() / 255
    mean, std = compute_mean_std(ImageTensors(images, torch.zeros(50, dtype=torch.long), ["a"]), batch_size=7)
    assert mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist())
    assert std == pytest.approx(x.std(dim=(0, 2, 3), correction=0).tolist())
    per_image = x.std(dim=(2, 3), correction=0).mean(0)
    assert mean_per_image_std(images, batch_size=7) == pytest.approx(per_image.tolist())
    assert all(p < s for p, s in zip(mean_per_image_std(images), std, strict=True))


def test_compute_mean_std_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        compute_mean_std(torch.zeros(0, 3, 4, 4, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------- splits


def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = np.repeat(np.arange(5), [20, 40, 60, 80, 100])
    train, val = stratified_split(labels, 0.25, seed=1)
    assert len(val) == 75 and len(train) == 225
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).size == 300
    assert np.bincount(labels[val]).tolist() == [5, 10, 15, 20, 25]
    again = stratified_split(torch.as_tensor(labels), 0.25, seed=1)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(stratified_split(labels, 0.25, seed=2)[1], val)


def test_stratified_split_zero_and_bad_fraction():
    train, val = stratified_split([0, 1, 0, 1], 0)
    assert train.tolist() == [0, 1, 2, 3] and val.size == 0
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split([0, 1], 1.0)
    with pytest.raises(ValueError, match="stratified"):
        stratified_split([0, 1, 2, 3, 4, 5], 0.2)  # one validation image cannot represent six classes


def test_stratified_subset():
    labels = np.repeat(np.arange(4), 25)
    keep = stratified_subset(labels, 20, seed=0)
    assert np.bincount(labels[keep]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(keep, stratified_subset(labels, 20, seed=0))
    assert stratified_subset(labels, None).size == 100 and stratified_subset(labels, 1000).size == 100


# ---------------------------------------------------------------------------------------------- containers


def test_image_tensors_validation_and_dataset_protocol():
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        ImageTensors(images.float(), torch.zeros(4), ["a"])
    with pytest.raises(ValueError, match="labels"):
        ImageTensors(images, torch.zeros(3), ["a"])
    with pytest.raises(ValueError, match="0..1"):
        ImageTensors(images, torch.tensor([0, 1, 2, 0]), ["a", "b"])
    ds = ImageTensors(images, torch.tensor([0, 1, 1, 0]), ["a", "b"])
    image, label = ds[2]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and label == 1
    assert ds.class_counts() == {"a": 2, "b": 2}
    shown = ds.with_transform(lambda x: x.float() + 1)
    assert shown[0][0].max() == 1.0 and ds.transform is None
    loader = torch.utils.data.DataLoader(shown, batch_size=3)
    x, y = next(iter(loader))
    assert x.shape == (3, 3, 8, 8) and y.tolist() == [0, 1, 1]


def test_load_data_shapes10_and_resize():
    bundle = load_data("shapes10", train_size=200, test_size=50, val_fraction=0.1, image_size=40)
    assert bundle.name == "shapes10" and "shapes10" in bundle.notice
    assert bundle.train.images.shape[1:] == (3, 40, 40) and bundle.image_size == 40
    assert len(bundle.train) == 180 and len(bundle.val) == 20 and len(bundle.test) == 50
    from resnet_course.training.config import TrainConfig

    train, val, test = bundle.loaders(TrainConfig(batch_size=32, device="cpu"))
    assert len(train) == 6 and len(val) == 1 and len(test) == 2


def test_load_data_rejects_unknown_spec(tmp_path):
    with pytest.raises(ValueError, match="cifar10.*shapes10"):
        load_data(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------------------------------------- ImageFolder


def test_imagefolder_skips_and_names_unreadable_files(imagefolder_root):
    with pytest.warns(UserWarning) as record:
        train, val, test = load_imagefolder(imagefolder_root, image_size=24, test_fraction=1 / 3)
    message = str(record[0].message)
    assert "broken.jpg" in message and "notes.txt" in message and "2 file(s)" in message
    assert val is None
    assert train.classes == ["blue", "green", "red"]
    assert len(train) == 12 and len(test) == 6
    assert train.images.shape[1:] == (3, 24, 24) and train.images.dtype == torch.uint8
    # every image (grayscale, RGBA, palette, any size) became RGB and keeps its class colour
    for part in (train, test):
        means = part.images.float().mean(dim=(2, 3))
        for image_mean, label in zip(means, part.labels.tolist(), strict=True):
            if part.classes[label] == "red":
                assert image_mean[0] > image_mean[2] or image_mean.std() < 1  # grayscale copies are neutral
            if part.classes[label] == "blue":
                assert image_mean[2] > image_mean[0] or image_mean.std() < 1


def test_imagefolder_raise_mode_names_the_files(imagefolder_root):
    with pytest.raises(ValueError, match="broken.jpg"):
        load_imagefolder(imagefolder_root, on_bad_file="raise")


def test_imagefolder_class_with_only_bad_files_is_an_error(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no readable images left for class\\(es\\) empty"):
            load_imagefolder(tmp_path)


def test_imagefolder_split_layout_and_load_data(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path / "train", per_class=8)
    make_imagefolder(tmp_path / "test", per_class=2, seed=1)
    make_imagefolder(tmp_path / "val", per_class=2, seed=2)
    bundle = load_data(str(tmp_path), image_size=16, val_fraction=0.5)
    assert bundle.name == tmp_path.name and bundle.notice == ""
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 6, 6)  # val/ wins over val_fraction
    assert bundle.classes == ["blue", "green", "red"] and bundle.image_size == 16
    assert bundle.mean == pytest.approx(compute_mean_std(bundle.train)[0])
    # without val/, the validation part is carved out of train/
    import shutil

    shutil.rmtree(tmp_path / "val")
    bundle = load_data(str(tmp_path), image_size=16, val_fraction=0.25)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (18, 6, 6)


def test_imagefolder_test_classes_must_exist_in_train(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path / "train", per_class=2)
    make_imagefolder(tmp_path / "test", per_class=1)
    (tmp_path / "test" / "purple").mkdir()
    make_imagefolder(tmp_path / "tmp", per_class=1)
    (tmp_path / "tmp" / "red" / "0.png").rename(tmp_path / "test" / "purple" / "0.png")
    with pytest.raises(ValueError, match="purple"):
        load_imagefolder(tmp_path)


def test_load_profile_data_uses_the_profile_sizes(monkeypatch):
    from resnet_course.data.loading import load_profile_data
    from resnet_course.profiles import PROFILES

    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    bundle = load_profile_data("smoke", train_size=100)
    assert bundle.name == "shapes10"
    assert len(bundle.train) + len(bundle.val) == 100 and len(bundle.test) == PROFILES["smoke"].test_size


def test_select_classes_relabels_in_the_given_order() -> None:
    from resnet_course.data.containers import ImageTensors

    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 2, 2).contiguous()
    part = ImageTensors(images, torch.tensor([0, 1, 2, 0, 1, 2]), ["x", "y", "z"])
    picked = part.select_classes([2, 0])
    assert picked.classes == ["z", "x"] and picked.labels.tolist() == [1, 0, 1, 0]
    assert picked.images[:, 0, 0, 0].tolist() == [0, 2, 3, 5]
    with pytest.raises(ValueError, match="distinct class indices in 0..2"):
        part.select_classes([0, 0])
    with pytest.raises(ValueError, match="distinct class indices"):
        part.select_classes([3])


def test_write_image_folder_round_trips_through_load_imagefolder(tmp_path) -> None:
    from resnet_course.data.containers import ImageTensors
    from resnet_course.data.imagefolder import write_image_folder

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=g)
    part = ImageTensors(images, torch.arange(12) % 3, ["cat", "dog", "emu"])
    root = write_image_folder(part, tmp_path / "folder")
    assert sorted(p.name for p in root.iterdir()) == ["cat", "dog", "emu"]
    assert not (tmp_path / "folder.partial").exists()
    train, val, test = load_imagefolder(root, image_size=16, test_fraction=0.25, seed=0)
    assert val is None and len(train) == 9 and len(test) == 3 and train.classes == part.classes
    everything = torch.cat([train.images, test.images])
    assert sorted(map(bytes, everything.flatten(1).numpy())) == sorted(map(bytes, images.flatten(1).numpy()))
    with pytest.raises(FileExistsError, match="delete it"):
        write_image_folder(part, root)
    small = write_image_folder(part, tmp_path / "small", image_size=8)
    assert load_imagefolder(small, image_size=8, test_fraction=0.25)[0].image_size == (8, 8)


class _Payload:
    """Unpickling this calls os.system: the kind of file a shared or downloaded data folder could hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_file_is_refused_and_its_code_never_runs(tiny_cifar_root, tmp_path):
    import pickle

    folder, marker = tiny_cifar_root / "cifar-10-batches-py", tmp_path / "payload-ran"
    meta = pickle.loads((folder / "batches.meta").read_bytes())
    (folder / "batches.meta").write_bytes(pickle.dumps({**meta, "num_cases_per_batch": _Payload(marker)}))
    with pytest.raises(CorruptDatasetError, match=r"batches.meta.*asks to run posix.system.*refused without running"):
        load_cifar10(tiny_cifar_root, download=False)
    assert not marker.exists()


def test_cifar_files_written_by_numpy_1_in_protocol_2_load(tiny_cifar_root):
    """The official files are Python 2 pickles (protocol 2) naming numpy.core.multiarray._reconstruct."""
    import pickle

    folder = tiny_cifar_root / "cifar-10-batches-py"
    entry = pickle.loads((folder / "test_batch").read_bytes())
    old = pickle.dumps(entry, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old  # the GLOBAL opcode of the official files
    (folder / "test_batch").write_bytes(old)
    _, test = load_cifar10(tiny_cifar_root, download=False)
    assert torch.equal(test.images, torch.from_numpy(entry["data"].reshape(-1, 3, 32, 32)))
