"""The command line: train → evaluate → predict round trips on a tiny shapes10, and every error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnet_course.apps import cli, cli_options
from resnet_course.training.checkpoints import load_checkpoint, read_checkpoint
from resnet_course.training.history import History

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = [
    "--data",
    "shapes10",
    "--train-size",
    "120",
    "--test-size",
    "40",
    "--batch-size",
    "16",
    "--no-progress",
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", "--model", "resnet20", "--epochs", "2", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_checkpoints_history_and_test_accuracy(trained: Path) -> None:
    assert {p.name for p in trained.iterdir()} >= {"last.pt", "best.pt", "history.json"}
    history = History.from_json(trained / "history.json")
    assert history.epoch == [1, 2] and history.val_acc[0] is not None
    for name in ("last.pt", "best.pt"):
        ckpt = read_checkpoint(trained / name)
        assert 0 <= ckpt["metrics"]["test_accuracy"] <= 1 and ckpt["metrics"]["test_of_epoch"] == 2
        assert ckpt["model"]["kwargs"] == {"num_classes": 10} and len(ckpt["classes"]) == 10
        assert ckpt["meta"]["data"]["spec"] == "shapes10" and ckpt["preprocess"]["image_size"] == 32
    assert read_checkpoint(trained / "best.pt")["epoch"] == history.best_epoch


def test_evaluate_json_matches_the_stored_test_accuracy(trained: Path, capsys) -> None:
    code, out, err = run(
        capsys, "evaluate", "--checkpoint", str(trained / "last.pt"), "--data", "shapes10", "--json"
    )
    assert code == 0, err
    (line,) = out.strip().splitlines()
    result = json.loads(line)
    assert result["n"] == 40 and set(result["per_class"]) == set(
        read_checkpoint(trained / "last.pt")["classes"]
    )
    assert result["accuracy"] == pytest.approx(
        read_checkpoint(trained / "last.pt")["metrics"]["test_accuracy"]
    )
    code, out, _ = run(
        capsys,
        "evaluate",
        "--checkpoint",
        str(trained / "best.pt"),
        "--data",
        "shapes10",
        "--split",
        "val",
        "--json",
    )
    history = History.from_json(trained / "history.json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(history.best_val_acc)
    code, out, _ = run(capsys, "evaluate", "--checkpoint", str(trained / "best.pt"), "--data", "shapes10")
    assert code == 0 and "accuracy" in out


def test_predict_json_one_object_per_image(trained: Path, tmp_path: Path, capsys) -> None:
    files = []
    for i, mode in enumerate(("RGB", "L", "RGBA")):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (40, 30), (200, 30 * i, 10)).convert(mode).save(path)
        files.append(str(path))
    code, out, err = run(
        capsys, "predict", "--checkpoint", str(trained / "best.pt"), *files, "--top-k", "3", "--json"
    )
    assert code == 0, err
    objects = [json.loads(line) for line in out.strip().splitlines()]
    assert [o["image"] for o in objects] == files
    model, ckpt = load_checkpoint(trained / "best.pt")
    for o in objects:
        assert len(o["predictions"]) == 3 and o["predictions"][0]["class"] in ckpt["classes"]
        probs = [p["probability"] for p in o["predictions"]]
        assert probs == sorted(probs, reverse=True)
    bad = tmp_path / "notes.png"
    bad.write_text("text")
    code, out, err = run(
        capsys, "predict", "--checkpoint", str(trained / "best.pt"), files[0], str(bad), "--json"
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("error:") and "notes.png" in err
    assert len(out.strip().splitlines()) == 2 and "error" in json.loads(out.strip().splitlines()[1])


def test_resume_of_a_finished_run_and_val_fraction_zero(trained: Path, tmp_path: Path, capsys) -> None:
    before = read_checkpoint(trained / "last.pt")["state_dict"]
    code, _, err = run(
        capsys, "train", "--model", "resnet20", "--epochs", "2", "--out", str(trained), "--resume", *TINY
    )
    assert code == 0, err
    after = read_checkpoint(trained / "last.pt")["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    out = tmp_path / "noval"
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "resnet20",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--val-fraction",
        "0",
        *TINY,
    )
    assert code == 0, err
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    code, _, err = run(
        capsys, "evaluate", "--checkpoint", str(out / "best.pt"), "--data", "shapes10", "--split", "val"
    )
    assert code == 1 and "no val split" in err


def test_imagenet_family_gets_the_cifar_stem_on_small_images(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r18"
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "resnet18",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--data",
        "shapes10",
        "--train-size",
        "40",
        "--test-size",
        "20",
        "--batch-size",
        "16",
        "--val-fraction",
        "0",
        "--no-progress",
    )
    assert code == 0, err
    assert read_checkpoint(out / "last.pt")["model"]["kwargs"] == {"num_classes": 10, "stem": "cifar"}


def test_expected_errors_are_one_line_with_exit_code_1(tmp_path: Path, capsys) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [
        ("evaluate", "--checkpoint", str(garbage), "--data", "shapes10"),
        ("predict", "--checkpoint", str(garbage), "x.png"),
        ("predict", "--checkpoint", str(tmp_path / "missing.pt"), "x.png"),
        (
            "train",
            "--model",
            "resnet20",
            "--data",
            str(tmp_path / "no_such_folder"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
        ),
    ]
    for argv in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_divergence_exits_1_with_advice(tmp_path: Path, capsys) -> None:
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "resnet20",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "d"),
        "--lr",
        "1e12",
        "--label-smoothing",
        "0",
        *TINY,
    )
    assert code == 1 and err.startswith("error: training diverged") and "learning rate" in err
    assert err.count("\n") == 1


def test_bad_arguments_exit_2(capsys) -> None:
    for argv in (
        ["train", "--model", "resnet9000", "--data", "shapes10", "--epochs", "1", "--out", "x"],
        ["train", "--model", "resnet20", "--data", "shapes10", "--epochs", "0", "--out", "x"],
        [
            "train",
            "--model",
            "resnet20",
            "--data",
            "shapes10",
            "--epochs",
            "1",
            "--out",
            "x",
            "--val-fraction",
            "1.5",
        ],
        ["evaluate", "--checkpoint", "x.pt"],
        ["frobnicate"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_help_documents_every_option(capsys) -> None:
    parser = cli.build_parser()
    expected = {
        "train": [
            "--model",
            "--data",
            "--epochs",
            "--out",
            "--batch-size",
            "--lr",
            "--optimizer",
            "--schedule",
            "--weight-decay",
            "--label-smoothing",
            "--amp",
            "--swa",
            "--accum-steps",
            "--val-fraction",
            "--seed",
            "--device",
            "--resume",
            "--no-progress",
            "--stream",
        ],
        "evaluate": ["--checkpoint", "--data", "--split", "--json", "--stream"],
        "predict": ["--checkpoint", "IMAGE", "--top-k", "--json"],
        "gui": ["--checkpoint", "--image", "--screenshot"],
    }
    for command, options in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for option in options:
            assert option in text, (command, option)
    for action in parser._subparsers._group_actions[0].choices["train"]._actions:  # every option has help
        assert action.help, action.dest


def test_gui_subcommand_calls_run_app(monkeypatch, tmp_path: Path, capsys) -> None:
    pytest.importorskip("PySide6")
    calls = []
    monkeypatch.setattr("resnet_course.apps.gui.app.run_app", lambda **kw: calls.append(kw) or 0)
    code, _, _ = run(capsys, "gui", "--checkpoint", "a.pt", "--screenshot", str(tmp_path / "s.png"))
    assert code == 0 and calls == [
        {"checkpoint": Path("a.pt"), "image": None, "screenshot": tmp_path / "s.png"}
    ]


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "resnet_course", "predict", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "--top-k" in proc.stdout


def test_train_options_take_their_defaults_from_train_config(monkeypatch) -> None:
    import dataclasses

    from resnet_course.training.config import TrainConfig

    args = cli.build_parser().parse_args(
        ["train", "--model", "resnet20", "--data", "shapes10", "--epochs", "1", "--out", "x"]
    )
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    shared = {k for k in vars(args) if k in fields}
    assert shared == {
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "schedule",
        "label_smoothing",
        "amp",
        "swa",
        "sync_bn",
        "accum_steps",
        "seed",
        "device",
    }
    assert all(getattr(args, k) == fields[k] for k in shared - {"epochs", "amp", "batch_size"})
    assert args.amp == "auto"  # exceptions: mixed precision wherever the hardware runs it natively,
    assert args.batch_size is None  # and the batch size (with SGD's lr) from the run profile
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    assert cli_options.config_from_args(args) == TrainConfig(epochs=1, amp="auto")


@pytest.mark.parametrize(
    ("extra", "world_size"),
    [
        ([], 1),  # the cpu profile's recipe
        (["--batch-size", "32"], 1),  # its lr scaled to the batch
        ([], 2),  # and to the global batch of 2 processes
        (["--lr", "0.05"], 1),
        (["--optimizer", "adamw"], 1),  # AdamW keeps its own default (1e-3)
    ],
)
def test_batch_size_and_lr_left_unset_come_from_the_profile(monkeypatch, extra, world_size) -> None:
    from resnet_course.profiles import get_profile

    cpu = get_profile("cpu")
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "cpu")
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    argv = ["train", "--model", "resnet20", "--data", "shapes10", "--epochs", "1", "--out", "x", *extra]
    args = cli.build_parser().parse_args(argv)
    config = cli_options.config_from_args(args)
    batch = 32 if "--batch-size" in extra else cpu.batch_size
    assert config.batch_size == batch
    if "--lr" in extra:
        assert config.lr == 0.05
    elif "--optimizer" in extra:
        assert config.lr is None and config.effective_lr() == 1e-3
    else:
        assert config.lr == pytest.approx(cpu.lr * batch * world_size / cpu.batch_size)
    assert "the cpu profile's (RESNET_COURSE_PROFILE=cpu)" in args.recipe


def test_train_says_which_recipe_it_took(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    argv = ["train", "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "run"), *TINY]
    argv.remove("--no-progress")
    argv[argv.index("--batch-size") : argv.index("--batch-size") + 2] = []
    argv[argv.index("--train-size") + 1] = "300"  # more than one batch of the profile's 128
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert "recipe: batch 128, lr 0.1 — the smoke profile's (RESNET_COURSE_PROFILE=smoke)" in err


def test_amp_option_takes_auto_on_off_and_alone_means_on() -> None:
    base = ["train", "--model", "resnet20", "--data", "shapes10", "--epochs", "1", "--out", "x"]
    parse = cli.build_parser().parse_args
    assert parse(base).amp == "auto"
    assert parse([*base, "--amp"]).amp is True and parse(["train", "--amp", *base[1:]]).amp is True
    assert parse([*base, "--amp", "off"]).amp is False and parse([*base, "--amp", "on"]).amp is True
    with pytest.raises(SystemExit):
        parse([*base, "--amp", "maybe"])


# --------------------------------------------------------------------------------------------------
# The run folder: checked before any data loads
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading data fails the test: the refusals below must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data was loaded before the run folder was checked")

    monkeypatch.setattr(cli, "_load_data", refuse)


def _train(capsys, out: Path | str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "train", "--model", "resnet20", "--epochs", "1", "--out", str(out), *TINY, *extra)


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", "is a file, not a folder"),
        ("file/run", "cannot write there (Not a directory)"),
        ("n" * 300, "cannot write there (File name too long)"),
        ("/proc/resnet-course-run", "cannot write there"),
    ],
)
def test_an_output_folder_that_cannot_be_written_is_one_line_before_the_data_loads(
    tmp_path: Path, capsys, where: str, message: str
) -> None:
    (tmp_path / "file").write_text("a file")
    code, _, err = _train(capsys, tmp_path / where)
    assert code == 1 and err.startswith("error: --out") and err.count("\n") == 1 and message in err, err
    assert (tmp_path / "file").read_text() == "a file"


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(
    trained: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = (out / "history.json").read_text()
    with monkeypatch.context() as m:
        m.setattr(cli, "_load_data", lambda *a, **k: pytest.fail("data loaded before the refusal"))
        code, _, err = _train(capsys, out)
        assert code == 1 and err.count("\n") == 1, err
        assert "already holds a run (last.pt, best.pt, history.json): continue it with --resume" in err
        assert (out / "history.json").read_text() == before
        # --resume on other data: refused, naming what differs
        code, _, err = _train(capsys, out, "--resume", "--train-size", "60")
        assert (
            code == 1
            and err.count("\n") == 1
            and "cannot resume on other data (--train-size 120 there, 60 now)" in err
        )
    with pytest.raises(SystemExit):  # argparse: the two are exclusive
        cli.main(["train", "--model", "resnet20", "--out", str(out), *TINY, "--resume", "--overwrite"])
    capsys.readouterr()
    (out / "best.pt").unlink()  # --overwrite: a new run, nothing of the old one left
    (out / "best.pt").write_bytes(b"not the new run's")
    code, _, err = _train(capsys, out, "--overwrite", "--val-fraction", "0")
    assert code == 0, err
    history = History.from_json(out / "history.json")
    assert history.epoch == [1] and read_checkpoint(out / "best.pt")["epoch"] == 1


@pytest.mark.usefixtures("no_data")
def test_a_run_folder_in_use_is_refused_before_the_data_loads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(  # another process holds the lock (fcntl only: no torch to import)
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(out / ".lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = _train(capsys, out)
    finally:
        holder.communicate("")
    assert code == 1 and err.count("\n") == 1 and "is in use by another training" in err, err


@pytest.mark.usefixtures("no_data")
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path: Path, capsys) -> None:
    out, precious = tmp_path / "run", tmp_path / "precious.txt"
    out.mkdir()
    precious.write_text("precious")
    (out / ".lock").symlink_to(precious)
    code, _, err = _train(capsys, out)
    assert code == 1 and err.count("\n") == 1 and ".lock is a symbolic link" in err, err
    assert precious.read_text() == "precious"


# --------------------------------------------------------------------------------------------------
# Inputs that cannot work, and a disk that fills up
# --------------------------------------------------------------------------------------------------


def _folder_of(tmp_path: Path, name: str, n: int, classes: list[str]) -> Path:
    from resnet_course.data.containers import ImageTensors
    from resnet_course.data.imagefolder import write_image_folder
    from resnet_course.data.shapes10 import make_shapes10

    shapes = make_shapes10(n, seed=0)
    labels = shapes.labels % len(classes)
    return write_image_folder(ImageTensors(shapes.images, labels, classes), tmp_path / name)


def test_a_batch_larger_than_the_split_and_a_single_class_are_refused(tmp_path: Path, capsys) -> None:
    code, _, err = run(
        capsys, "train", "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "a"),
        *TINY, "--batch-size", "100000",
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1, err
    assert "the batch of 100000 images is larger than the training split (108 images), and the learning" in err
    code, _, err = run(
        capsys, "train", "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "c"),
        *TINY, "--batch-size", "200", "--lr", "0.05",
    )  # fmt: skip
    assert code == 0 and "warning: the batch of 200 images is larger than the training split (108 images)" in err
    one = _folder_of(tmp_path, "one", 40, ["cat"])
    code, _, err = _train(capsys, tmp_path / "b", "--data", str(one))
    assert code == 1 and "the training split holds one class only (cat)" in err, err


def test_a_test_split_without_some_classes_is_named_in_a_warning(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    _folder_of(root, "train", 60, ["a", "b", "c"])
    _folder_of(root, "test", 20, ["a", "b"])
    code, out, err = run(
        capsys, "train", "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "run"),
        "--data", str(root), "--batch-size", "16", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert (
        "warning: the test split has no images of 1 class(es) (c); its accuracy covers the other classes"
        in err
    )


def test_a_full_disk_during_the_run_is_one_line_and_resume_continues(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from resnet_course import atomic

    out, writes = tmp_path / "run", {"n": 0}
    real_fsync = os.fsync

    def full_at_the_fourth_write(
        fd: int,
    ) -> None:  # epoch 1: best.pt, last.pt, history.json; epoch 2: best.pt
        writes["n"] += 1
        if writes["n"] >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", full_at_the_fourth_write)
    code, _, err = _train(capsys, out, "--epochs", "2")
    assert code == 1 and err.count("\n") == 1, err
    assert f"cannot write the run's files in {out} (No space left on device); {out / 'last.pt'} keeps" in err
    assert read_checkpoint(out / "last.pt")["epoch"] == 1 and History.from_json(
        out / "history.json"
    ).epoch == [1]
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.pt", "history.json", "last.pt"]
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    code, _, err = _train(capsys, out, "--epochs", "2", "--resume")
    assert code == 0, err
    assert read_checkpoint(out / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("damage", ["absurd settings", "NaN weights"])
def test_a_crafted_checkpoint_is_refused_in_one_line(
    trained: Path, tmp_path: Path, capsys, damage: str
) -> None:
    ckpt = read_checkpoint(trained / "best.pt")
    if damage == "absurd settings":
        ckpt["model"]["kwargs"]["num_classes"] = 10**9
        expected = "fc.weight (10, 64) vs (1000000000, 64)"
    else:
        ckpt["state_dict"]["conv1.weight"][0] = float("nan")
        expected = "holds weights that are not finite numbers (NaN or inf, e.g. in conv1.weight)"
    path = tmp_path / "crafted.pt"
    torch.save(ckpt, path)
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    for argv in (["predict", "--checkpoint", str(path), str(image)], ["evaluate", "--checkpoint", str(path)]):
        code, out, err = run(
            capsys,
            *argv,
            "--data" if argv[0] == "evaluate" else "--top-k",
            "shapes10" if argv[0] == "evaluate" else "3",
        )
        assert code == 1 and err.count("\n") == 1 and expected in err and out == "", (argv, err)


def test_ctrl_c_right_after_the_precision_line_stops_the_run_in_one_line(tmp_path: Path) -> None:
    """The moment a user once saw Ctrl-C ignored (issue 26): the run prints its precision, then sets up ``fit``."""
    import signal

    out = tmp_path / "run"
    args = ["train", "--model", "resnet20", "--data", "shapes10", "--train-size", "200", "--test-size", "100"]
    job = subprocess.Popen(
        [sys.executable, "-m", "resnet_course", *args, "--epochs", "50", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell starts background jobs (CI's, say) with SIGINT ignored, which children inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []  # what the run says before training, on stderr (stdout holds the result only)
        while not (lines and lines[-1].startswith("precision:")):
            lines.append(job.stderr.readline())
            assert lines[-1], f"the run ended before its precision line: {lines}"
        job.send_signal(signal.SIGINT)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 130, (stdout, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "interrupted" in stderr, stderr
    assert "Traceback" not in stdout + stderr and stdout == ""
