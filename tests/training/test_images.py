"""The image-folder task kind (swarm.training.images): schema, reading a site's folder, errors.

Images are drawn with Pillow in tmp_path: red circles against blue squares, so a small CNN
can tell them apart in a few epochs.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.images import (
    ImageFolderTask,
    check_images,
    open_image_task,
    split_stratified,
)
from swarm.training.task import Task
from swarm.training.taskfile import TaskFile, open_task
from swarm.training.vision import cnn

CLASSES = ("circle", "square")


def draw_shape(label: int, index: int, size: tuple[int, int] = (20, 20)) -> Image.Image:
    """A red circle (label 0) or a blue square (label 1) on a dark background that varies."""
    background = (10 + 7 * (index % 5), 20, 10)
    img = Image.new("RGB", size, background)
    box = (3 + index % 3, 3, size[0] - 4, size[1] - 4 - index % 2)
    if label == 0:
        ImageDraw.Draw(img).ellipse(box, fill=(220, 40, 40))
    else:
        ImageDraw.Draw(img).rectangle(box, fill=(40, 40, 220))
    return img


def make_site(folder: Path, per_class: tuple[int, ...] = (6, 6), suffix: str = ".png") -> Path:
    for label, count in enumerate(per_class):
        class_dir = folder / CLASSES[label]
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            draw_shape(label, index).save(class_dir / f"img{index:03d}{suffix}")
    return folder


def write_task(
    folder: Path,
    model: str = 'architecture = "cnn"',
    data: str = "",
    *,
    size: int = 8,
    epochs: int = 1,
) -> TaskFile:
    path = folder / "task.toml"
    path.write_text(
        '[task]\nname = "shapes"\nkind = "image-folder"\nseed = 3\nrounds = 4\n'
        f"[model]\n{model}\n"
        f'[data]\nclasses = ["circle", "square"]\nimage_size = {size}\n{data}\n'
        f"[training]\nepochs = {epochs}\nbatch_size = 4\nlr = 0.05\n"
    )
    return TaskFile.load(path)


def one_line_error(exc: pytest.ExceptionInfo[BaseException], *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# --- binding and loading ---------------------------------------------------------------------


def test_task_is_bound_to_one_site(tmp_path: Path) -> None:
    """Fault: a task that does not implement the Task protocol, or forgets the task file's
    name, training config or rounds, or the site it is bound to."""
    spec = write_task(tmp_path)
    task = open_task(spec, make_site(tmp_path / "st-anne"))
    assert isinstance(task, ImageFolderTask) and isinstance(task, Task)
    assert task.name == "shapes"
    assert task.sites == ("st-anne",)
    assert task.default_config == spec.training
    assert task.default_rounds == 4
    first, second = task.build_model(3).state_dict(), task.build_model(3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert first["fc.weight"].shape == (2, 32)


def test_load_site_decodes_resizes_and_splits_by_class(tmp_path: Path) -> None:
    """Fault: images not resized to the task's size, labels not class indices, a split that
    leaves a class out of the test set or differs from one call to the next."""
    spec = write_task(tmp_path)
    task = open_image_task(spec, make_site(tmp_path / "site", (10, 5)), "site")
    data = task.load_site("site", seed=3)
    assert data.x_train.shape[1:] == (3, 8, 8) and data.x_train.dtype == torch.float32
    assert data.y_train.dtype == torch.int64
    assert data.train_samples + data.test_samples == 15
    assert sorted(data.y_test.tolist()) == [0, 0, 1]  # round(0.2 * 10), round(0.2 * 5)
    assert data.classes == CLASSES
    again = task.load_site("site", seed=3)
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)
    assert float(data.x_train.min()) >= -1.0 and float(data.x_train.max()) <= 1.0


def test_pixels_are_normalised_with_the_task_files_constants(tmp_path: Path) -> None:
    """Fault: normalisation from the data (per-site statistics) instead of the task file's
    constants, a wrong scale for 8-bit or 16-bit images, or RGB kept for a grayscale task."""
    spec = write_task(tmp_path, data="channels = 1\nnormalize = { mean = [0.25], std = [0.5] }\n")
    site = tmp_path / "site"
    for name, value in (("circle", 255), ("square", 0)):
        (site / name).mkdir(parents=True)
        for index in range(2):
            Image.new("L", (13, 9), value).save(site / name / f"{index}.png")
    # 16-bit grayscale (X-ray detectors): full scale is 65535
    Image.fromarray(np.full((5, 5), 65535, dtype=np.uint16)).save(site / "circle" / "deep.png")
    data = open_image_task(spec, site, "site").load_site("site", seed=0)
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])
    assert x.shape[1:] == (1, 8, 8)
    assert torch.all(x[y == 0] == (1.0 - 0.25) / 0.5)
    assert torch.all(x[y == 1] == (0.0 - 0.25) / 0.5)


def test_files_are_read_in_sorted_order_recursively_and_others_skipped(tmp_path: Path) -> None:
    """Fault: directory order (differs between file systems) deciding the split, images in
    subfolders missed, or non-image files and hidden files read as images."""
    spec = write_task(tmp_path)
    site = make_site(tmp_path / "site", (3, 3))
    (site / "square" / "patient7").mkdir()
    draw_shape(1, 9).save(site / "square" / "patient7" / "a.PNG")
    (site / "square" / "notes.txt").write_text("not an image")
    (site / "square" / ".DS_Store").write_bytes(b"\0junk")
    (site / "circle" / "._img000.png").write_bytes(b"\0macos resource fork")
    data = open_image_task(spec, site, "site").load_site("site", seed=1)
    assert data.train_samples + data.test_samples == 7
    report = check_images(spec, site)
    assert report.ok and report.label_counts == {"circle": 3, "square": 4}
    assert any("1 file(s) skipped" in note and ".txt" in note for note in report.notes)


def test_split_is_stratified_for_any_number_of_classes() -> None:
    """Fault: the heart split's 0/1-only rule applied to class indices 2 and up (left out of
    the test split), or a class with one example put in the test split alone."""
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3], dtype=np.int64)
    train, test = split_stratified(labels, seed=0, site="x", test_fraction=0.2)
    assert sorted(labels[test].tolist()) == [0, 0, 1, 2]
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    again = split_stratified(labels, seed=0, site="x", test_fraction=0.2)
    assert np.array_equal(test, again[1])
    assert not np.array_equal(test, split_stratified(labels, 1, "x", 0.2)[1])


# --- a site's folder that cannot be used -----------------------------------------------------


def test_data_problems_are_one_line_naming_the_path(tmp_path: Path) -> None:
    """Fault: a missing folder, a missing class folder, a corrupt image, no images or one class
    only surfacing as a traceback (or training on the wrong data) instead of one line."""
    spec = write_task(tmp_path)

    def load(folder: Path) -> None:
        open_image_task(spec, folder, folder.name).load_site(folder.name, seed=0)

    with pytest.raises(SiteDataError) as exc:
        load(tmp_path / "absent")
    one_line_error(exc, str(tmp_path / "absent"), "no such folder")

    only_circles = make_site(tmp_path / "circles", (4, 0))
    (only_circles / "square").rmdir()
    with pytest.raises(SiteDataError) as exc:
        load(only_circles)
    one_line_error(exc, str(only_circles / "square"), "no such folder")

    (only_circles / "square").mkdir()
    with pytest.raises(SiteDataError) as exc:
        load(only_circles)
    one_line_error(exc, "one class only", "circle")

    empty = make_site(tmp_path / "empty", (0, 0))
    with pytest.raises(SiteDataError) as exc:
        load(empty)
    one_line_error(exc, str(empty), "no images")

    corrupt = make_site(tmp_path / "corrupt")
    bad = corrupt / "square" / "img002.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    with pytest.raises(SiteDataError) as exc:
        load(corrupt)
    one_line_error(exc, str(bad), "not a readable image")

    extra = make_site(tmp_path / "extra")
    (extra / "triangle").mkdir()
    with pytest.raises(SiteDataError) as exc:
        load(extra)
    one_line_error(exc, "triangle", "not classes of the task")

    with pytest.raises(SiteDataError, match="no data configured"):
        open_image_task(spec, None, "site").load_site("site", seed=0)

    fine = make_site(tmp_path / "fine")
    with pytest.raises(SiteDataError) as exc:
        open_image_task(spec, fine, "fine").load_site("elsewhere", seed=0)
    one_line_error(exc, str(fine), "bound to site 'fine'")


def test_check_reports_counts_unreadable_files_and_odd_sizes(tmp_path: Path) -> None:
    """Fault: `swarm task check` stopping at the first problem, hiding which files are bad, or
    not saying that images will be stretched or upscaled."""
    spec = write_task(tmp_path, size=16)
    site = make_site(tmp_path / "site", (3, 2))
    draw_shape(0, 1, size=(30, 12)).save(site / "circle" / "wide.png")
    (site / "square" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    report = check_images(spec, site)
    assert report.site == "site"
    assert report.rows == 6
    assert report.label_counts == {"circle": 4, "square": 2}
    assert len(report.problems) == 1 and "broken.jpg" in report.problems[0]
    sizes = next(note for note in report.notes if note.startswith("sizes:"))
    assert "20x20 (5)" in sizes and "1 not square" in sizes and "smaller than 16" in sizes

    missing = check_images(spec, tmp_path / "nowhere")
    assert not missing.ok and missing.rows == 0 and "no such folder" in missing.problems[0]

    fine = check_images(spec, make_site(tmp_path / "fine"))
    assert fine.ok and fine.label_counts == {"circle": 6, "square": 6}


# --- the task file's tables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "data", "fragment"),
    [
        ('architecture = "vgg16"', "", "architecture must be one of resnet18"),
        ('architecture = "cnn"\ndepth = 3', "", "[model] has unknown key(s) depth"),
        ('architecture = "densenet121"', "", "image_size must be a whole number from 32"),
        ('architecture = "cnn"', "channels = 2", "channels must be 1"),
        ('architecture = "cnn"', "test_fraction = 1.0", "test_fraction"),
        ('architecture = "cnn"', 'extensions = ["png"]', "extensions"),
        ('architecture = "cnn"', "normalize = { mean = [0.5], std = [0.5] }", "3 number(s)"),
        ('architecture = "cnn"', "normalize = { mean = [0, 0, 0], std = [1, 0, 1] }", "std"),
        ('architecture = "cnn"', "colour = true", "[data] has unknown key(s) colour"),
        ('architecture = "cnn"\nweights = "w.pt"', "", "weights_sha256"),
        (
            'architecture = "cnn"\nweights = "absent.pt"\nweights_sha256 = "' + "0" * 64 + '"',
            "",
            "no such file",
        ),
    ],
)
def test_bad_tables_are_one_line_task_file_errors(
    tmp_path: Path, model: str, data: str, fragment: str
) -> None:
    """Fault: a task file whose [model]/[data] tables are wrong accepted (hospitals would train
    different things under one task id) or refused with a traceback."""
    (tmp_path / "w.pt").write_bytes(b"x")
    spec = write_task(tmp_path, model=model, data=data)
    with pytest.raises(TaskFileError) as exc:
        open_task(spec, None)
    one_line_error(exc, "task.toml", fragment)


def test_classes_must_be_two_distinct_folder_names(tmp_path: Path) -> None:
    """Fault: one class (nothing to learn), a class listed twice, or a class name that walks
    out of the site's folder."""
    for classes, fragment in (
        ('["only"]', "at least two"),
        ('["a", "a"]', "twice"),
        ('["a", "../b"]', "not a folder name"),
    ):
        path = tmp_path / "task.toml"
        path.write_text(
            '[task]\nname = "x"\nkind = "image-folder"\n[model]\narchitecture = "cnn"\n'
            f"[data]\nclasses = {classes}\nimage_size = 8\n"
        )
        with pytest.raises(TaskFileError) as exc:
            open_task(TaskFile.load(path), None)
        one_line_error(exc, fragment)


# --- initial weights -------------------------------------------------------------------------


def _save(state: dict[str, torch.Tensor], path: Path) -> str:
    torch.save(state, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_initial_weights_are_checked_then_loaded(tmp_path: Path) -> None:
    """Fault: a weights file loaded without checking its hash (hospitals starting from different
    models under one task id), or the file's weights not used."""
    source = cnn(2, 3, seed=11).state_dict()
    sha = _save(source, tmp_path / "init.pt")
    spec = write_task(
        tmp_path, model=f'architecture = "cnn"\nweights = "init.pt"\nweights_sha256 = "{sha}"'
    )
    state = open_task(spec, None).build_model(3).state_dict()
    assert all(torch.equal(state[k], source[k]) for k in source)

    wrong = write_task(
        tmp_path, model=f'architecture = "cnn"\nweights = "init.pt"\nweights_sha256 = "{"ab" * 32}"'
    )
    with pytest.raises(TaskFileError) as exc:
        open_task(wrong, None)
    one_line_error(exc, "init.pt", f"SHA-256 {sha}", "ab" * 32)


def test_a_head_of_another_shape_keeps_its_seeded_values(tmp_path: Path) -> None:
    """Fault: ImageNet-style weights (1000-class head) refused for a two-class task, or a body
    tensor of the wrong shape (another architecture's file) silently skipped."""
    source = cnn(5, 3, seed=11).state_dict()
    sha = _save(source, tmp_path / "five.pt")
    spec = write_task(
        tmp_path, model=f'architecture = "cnn"\nweights = "five.pt"\nweights_sha256 = "{sha}"'
    )
    state = open_task(spec, None).build_model(3).state_dict()
    seeded = cnn(2, 3, seed=3).state_dict()
    assert torch.equal(state["conv2.weight"], source["conv2.weight"])
    assert torch.equal(state["fc.weight"], seeded["fc.weight"])

    gray = cnn(2, 1, seed=11).state_dict()  # conv1 takes one channel, the task three
    sha = _save(gray, tmp_path / "gray.pt")
    spec = write_task(
        tmp_path, model=f'architecture = "cnn"\nweights = "gray.pt"\nweights_sha256 = "{sha}"'
    )
    with pytest.raises(TaskFileError) as exc:
        open_task(spec, None).build_model(0)
    one_line_error(exc, "conv1.weight", "channels")

    sha = _save({"something.else": torch.zeros(2)}, tmp_path / "other.pt")
    spec = write_task(
        tmp_path, model=f'architecture = "cnn"\nweights = "other.pt"\nweights_sha256 = "{sha}"'
    )
    with pytest.raises(TaskFileError) as exc:
        open_task(spec, None).build_model(0)
    one_line_error(exc, "do not fit cnn", "missing conv1.weight")


# --- training --------------------------------------------------------------------------------


def test_cnn_learns_the_shapes_deterministically(tmp_path: Path) -> None:
    """Fault: labels or pixels scrambled between reading and training (the model cannot beat
    chance), or training that differs between two runs of the same round."""
    spec = write_task(tmp_path, size=12, epochs=15)
    task = open_task(spec, make_site(tmp_path / "site", (10, 10)))
    data = task.load_site("site", seed=0)
    states = []
    for _ in range(2):
        model = task.build_model(spec.seed)
        assert task.train(model, data, spec.training.for_round(1, "site")) == 16
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    metrics = task.evaluate(model, data)
    assert metrics.samples == 4
    assert metrics.accuracy == 1.0
    assert not math.isnan(metrics.loss)


def test_resnet18_trains_a_round_on_tiny_images(tmp_path: Path) -> None:
    """Fault: ResNet-18 that cannot take the task's images (shape mismatch between the loaded
    tensors and the model) or whose BatchNorm buffers do not move in training."""
    spec = write_task(tmp_path, model='architecture = "resnet18"', size=16)
    task = open_task(spec, make_site(tmp_path / "site", (5, 5)))
    data = task.load_site("site", seed=0)
    model = task.build_model(0)
    before = model.state_dict()["bn1.running_mean"].clone()
    assert task.train(model, data, spec.training) == 8
    assert not torch.equal(model.state_dict()["bn1.running_mean"], before)
    assert task.evaluate(model, data).samples == 2


def test_torchvision_densenet_download_names_are_accepted(tmp_path: Path) -> None:
    """Fault: torchvision's published DenseNet files (made before its modules were renamed:
    "denselayer1.norm.1.weight" for "denselayer1.norm1.weight") refused as not fitting."""
    from swarm.training.vision import densenet121

    source = densenet121(2, 3, seed=5).state_dict()
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", name): value
        for name, value in source.items()
        if not name.endswith("num_batches_tracked")  # those files predate the counters too
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    sha = _save(legacy, tmp_path / "densenet.pt")
    spec = write_task(
        tmp_path,
        model=f'architecture = "densenet121"\nweights = "densenet.pt"\nweights_sha256 = "{sha}"',
        size=32,
    )
    state = open_task(spec, None).build_model(0).state_dict()
    assert all(torch.equal(state[k], source[k]) for k in source)
