"""The image-folder task kind: each hospital's images in one folder per class, a CNN to train.

A task file declares the model and how images are read; each hospital's peer config points at
its own folder::

    [task]
    name = "chest-xray"
    kind = "image-folder"
    [model]
    architecture = "resnet18"          # resnet18 | densenet121 | cnn (swarm.training.vision)
    weights = "resnet18-init.pt"       # optional: initial weights (a torch.save'd state_dict),
    weights_sha256 = "9f3c..."         #   relative to the task file; its hash is required
    [data]
    classes = ["normal", "pneumonia"]  # one subfolder per class, in label order
    image_size = 224                   # every image is resized to image_size x image_size
    channels = 3                       # 1: grayscale, 3: RGB
    extensions = [".png", ".jpg", ".jpeg"]
    test_fraction = 0.2                # each site's share of test images, per class
    normalize = { mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }

    <site folder>/normal/*.png, <site folder>/pneumonia/*.png   (subfolders are searched too)

Why everything that shapes the pixels is in the file: the task id hashes the file, so two
hospitals that agree on the id resize and normalise alike. Normalisation constants are fixed in
the file, never computed from one site's images (they would leak that site's statistics into
everyone's model and differ between sites). Resizing stretches the whole image to a square with
Pillow's bilinear filter (antialiased when shrinking): nothing is cropped away, and the same file
gives the same tensor every time. 16-bit grayscale (common for X-rays) is scaled by 65535, 8-bit
by 255, before normalising.

Labels are class indices (int64) and the model outputs one logit per class, even for two classes
(cross-entropy; swarm.training.loop's multiclass path), so a two-class and a five-class task train
alike. Each site's images are split into train and test per class with a seeded shuffle, so a
site's test split keeps its class balance.

Initial weights: ``weights`` names a state_dict in torchvision's layout (ImageNet weights, or a
model trained elsewhere). Its SHA-256 is checked before it is loaded (TaskFileError otherwise).
A classifier head of another shape (ImageNet's 1000 classes) is left at its seeded initialisation
so ImageNet weights fine-tune to the task's classes; any other tensor must match.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.heart_data import stratified_split
from swarm.training.loop import evaluate_classifier, train_classifier
from swarm.training.task import Metrics, SiteData, TrainConfig
from swarm.training.taskfile import DataReport, TaskFile
from swarm.training.vision import ARCHITECTURES, MIN_IMAGE_SIZE

log = logging.getLogger(__name__)

_MODEL_KEYS = ("architecture", "weights", "weights_sha256")
_DATA_KEYS = ("classes", "image_size", "channels", "extensions", "test_fraction", "normalize")
DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: largest image side a task may ask for: 4096^2 RGB float32 is 200 MB per image already
MAX_IMAGE_SIZE = 4096
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: the classifier head of each architecture: the tensors ImageNet weights may not fit
_HEADS = {"resnet18": "fc.", "densenet121": "classifier.", "cnn": "fc."}
#: torchvision's DenseNet download files predate its module names ("norm.1" for "norm1")
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
#: how many unreadable files a report names before it counts the rest
_LISTED = 5


@dataclass(frozen=True)
class ImageSchema:
    """The ``[model]`` and ``[data]`` tables of an image-folder task file, validated."""

    architecture: str
    classes: tuple[str, ...]
    image_size: int
    channels: int = 3
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    test_fraction: float = 0.2
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    #: initial weights file (resolved) and its expected SHA-256 (lower-case hex)
    weights: Path | None = None
    weights_sha256: str = ""

    @classmethod
    def from_spec(cls, spec: TaskFile) -> ImageSchema:
        """Validate ``spec``'s tables; TaskFileError naming the file, table and key."""
        where = spec.path.name
        model, data = spec.model, spec.data
        _only(model, _MODEL_KEYS, where, "model")
        _only(data, _DATA_KEYS, where, "data")
        architecture = model.get("architecture")
        if architecture not in ARCHITECTURES:
            raise TaskFileError(
                f"{where}: [model] architecture must be one of {', '.join(ARCHITECTURES)}, "
                f"not {architecture!r}"
            )
        weights, sha = _weights(spec, where)
        classes = _classes(data.get("classes"), where)
        minimum = MIN_IMAGE_SIZE[architecture]
        image_size = data.get("image_size")
        if (
            not isinstance(image_size, int)
            or isinstance(image_size, bool)
            or not (minimum <= image_size <= MAX_IMAGE_SIZE)
        ):
            raise TaskFileError(
                f"{where}: [data] image_size must be a whole number from {minimum} to "
                f"{MAX_IMAGE_SIZE} for {architecture} (e.g. 224), not {image_size!r}"
            )
        channels = data.get("channels", 3)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise TaskFileError(
                f"{where}: [data] channels must be 1 (grayscale) or 3 (RGB), not {channels!r}"
            )
        extensions = _extensions(data.get("extensions", list(DEFAULT_EXTENSIONS)), where)
        test_fraction = data.get("test_fraction", 0.2)
        if not _is_number(test_fraction) or not 0.0 < test_fraction < 1.0:
            raise TaskFileError(
                f"{where}: [data] test_fraction must be a number between 0 and 1, "
                f"not {test_fraction!r}"
            )
        mean, std = _normalize(data.get("normalize"), channels, where)
        return cls(
            architecture=architecture,
            classes=classes,
            image_size=image_size,
            channels=channels,
            extensions=extensions,
            test_fraction=float(test_fraction),
            mean=mean,
            std=std,
            weights=weights,
            weights_sha256=sha,
        )


# --- reading a site's folder -------------------------------------------------------------------


@dataclass
class FolderScan:
    """The image files of one site's folder, sorted, with their labels, and what was wrong.

    ``problems`` are the reasons the folder cannot be used (each one line naming the path);
    ``skipped`` the files that were not images of the task's extensions (hidden files aside).
    """

    folder: Path
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)


def scan_folder(schema: ImageSchema, folder: Path) -> FolderScan:
    """List ``folder``'s images class by class, in a deterministic order (sorted relative
    paths, searched recursively), without opening them."""
    scan = FolderScan(folder=folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        scan.problems.append(f"{folder}: {what} (the site's images, one subfolder per class)")
        return scan
    known = set(schema.classes)
    scan.unknown_folders = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and p.name not in known and not _hidden(p)
    )
    if scan.unknown_folders:
        scan.problems.append(
            f"{folder}: subfolder(s) {', '.join(scan.unknown_folders)} are not classes of the "
            f"task ({', '.join(schema.classes)})"
        )
    for label, name in enumerate(schema.classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            scan.problems.append(
                f"{class_dir}: no such folder (class {name!r} of the task; create it empty "
                "if this site has no such images)"
            )
            continue
        found = sorted(
            (p for p in class_dir.rglob("*") if p.is_file() and not _hidden(p, class_dir)),
            key=lambda p: p.relative_to(class_dir).as_posix(),
        )
        for path in found:
            if path.suffix.lower() in schema.extensions:
                scan.files.append(path)
                scan.labels.append(label)
            else:
                scan.skipped.append(path)
    return scan


def _hidden(path: Path, root: Path | None = None) -> bool:
    """Dot files and folders (.DS_Store, macOS's ._name copies, .git) are never images."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") for part in parts)


@dataclass(frozen=True)
class DecodedImage:
    """One image as the model sees it (normalised float32, (channels, size, size)) and what it
    was on disk (for check_images' notes)."""

    pixels: npt.NDArray[np.float32]
    width: int
    height: int
    mode: str


def decode_image(schema: ImageSchema, path: Path) -> DecodedImage:
    """Read, convert, resize and normalise one image (module docstring); SiteDataError naming
    the file when Pillow cannot decode it."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            width, height, mode = img.width, img.height, img.mode
            pixels = _to_array(img, schema.channels, schema.image_size)
    # Pillow raises whatever its decoder for the format raises (OSError, ValueError,
    # SyntaxError, struct.error, DecompressionBombError...): any of them means "unreadable".
    except UnidentifiedImageError:
        raise SiteDataError(
            f"{path}: not a readable image (damaged, or not a format Pillow reads)"
        ) from None
    except Exception as exc:
        reason = str(exc).splitlines()[0].replace(str(path), path.name) if str(exc) else ""
        raise SiteDataError(
            f"{path}: not a readable image ({reason or type(exc).__name__})"
        ) from None
    mean = np.asarray(schema.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(schema.std, dtype=np.float32).reshape(-1, 1, 1)
    return DecodedImage(((pixels - mean) / std).astype(np.float32), width, height, mode)


def _to_array(img: Image.Image, channels: int, size: int) -> npt.NDArray[np.float32]:
    """(channels, size, size) float32 in [0, 1] (for 8- and 16-bit images)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # 16-bit (or 32-bit) grayscale: resize in floating point, so no precision is lost to an
        # 8-bit conversion; "F" images are taken as already scaled to [0, 1]
        scale = 1.0 if img.mode == "F" else 65535.0
        gray = Image.fromarray(np.asarray(img, dtype=np.float32) / np.float32(scale), mode="F")
        plane = np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR), np.float32)
        return np.repeat(plane[None], channels, axis=0)
    converted = img.convert("L" if channels == 1 else "RGB")
    resized = converted.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def split_stratified(
    labels: npt.NDArray[np.int64], seed: int, site: str, test_fraction: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Stratified train/test split: (train indices, test indices), each sorted.

    Each class gives ``round(test_fraction * count)`` of its examples to the test split, at
    least one when it has two or more and never all of them (the rule of the heart task's
    split, for any number of classes). Deterministic in (seed, site).
    """
    return stratified_split(labels, f"image-split:{seed}:{site}", test_fraction)


# --- the task ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolderTask:
    """An image-folder task file bound to one site's folder (swarm.training.task.Task).

    ``device`` is where evaluation runs (training's device is ``TrainConfig.device``).
    """

    spec: TaskFile
    schema: ImageSchema
    data: Path | None
    site: str
    device: str = "cpu"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sites(self) -> tuple[str, ...]:
        return (self.site,)

    @property
    def default_config(self) -> TrainConfig:
        return self.spec.training

    @property
    def default_rounds(self) -> int:
        return self.spec.rounds

    @property
    def classes(self) -> tuple[str, ...]:
        return self.schema.classes

    def build_model(self, seed: int) -> nn.Module:
        """The architecture with weights drawn from ``seed``, then the task's initial weights
        file over them where it names one (module docstring)."""
        schema = self.schema
        build = ARCHITECTURES[schema.architecture]
        model = build(len(schema.classes), schema.channels, seed)
        if schema.weights is not None:
            weights = _read_weights(str(schema.weights), schema.weights_sha256, self.spec.path.name)
            _load_initial(model, weights, schema, self.spec.path.name)
        return model

    def load_site(self, site: str, seed: int) -> SiteData:
        """This site's images, decoded, normalised and split by ``seed``; SiteDataError (one
        line, naming the folder or file) when they cannot be used."""
        if self.data is None:
            raise SiteDataError("no data configured: the peer config names no [task] data")
        if site != self.site:
            raise SiteDataError(
                f"{self.data}: this task is bound to site {self.site!r}, not {site!r}"
            )
        schema = self.schema
        scan = scan_folder(schema, self.data)
        if scan.problems:
            raise SiteDataError(scan.problems[0])
        labels = np.asarray(scan.labels, dtype=np.int64)
        _check_classes(schema, self.data, labels)
        started = time.perf_counter()
        size = schema.image_size
        pixels = np.empty((len(scan.files), schema.channels, size, size), dtype=np.float32)
        for index, path in enumerate(scan.files):
            pixels[index] = decode_image(schema, path).pixels
        train, test = split_stratified(labels, seed, site, schema.test_fraction)
        x, y = torch.from_numpy(pixels), torch.from_numpy(labels)
        log.info(
            "site %s: %d images (%s) decoded in %.1f s; %d train / %d test",
            site,
            len(scan.files),
            ", ".join(
                f"{c} {n}" for c, n in zip(schema.classes, _counts(schema, labels), strict=True)
            ),
            time.perf_counter() - started,
            train.size,
            test.size,
        )
        return SiteData(
            site=site,
            x_train=x[torch.from_numpy(train)],
            y_train=y[torch.from_numpy(train)],
            x_test=x[torch.from_numpy(test)],
            y_test=y[torch.from_numpy(test)],
            feature_names=(),
            classes=schema.classes,
        )

    def train(
        self,
        model: nn.Module,
        data: SiteData,
        config: TrainConfig,
        global_model: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        return train_classifier(model, data.x_train, data.y_train, config, global_model)

    def evaluate(self, model: nn.Module, data: SiteData) -> Metrics:
        return evaluate_classifier(model, data.x_test, data.y_test, device=self.device)


def open_image_task(spec: TaskFile, data: Path | None, site: str) -> ImageFolderTask:
    """``spec`` (kind image-folder) bound to the site whose image folder is ``data`` (None:
    the model only). TaskFileError for a bad [model]/[data] table or initial weights file."""
    schema = ImageSchema.from_spec(spec)
    if schema.weights is not None:  # refuse a wrong file now, not at the first round
        _read_weights(str(schema.weights), schema.weights_sha256, spec.path.name)
    return ImageFolderTask(
        spec=spec, schema=schema, data=None if data is None else Path(data), site=site
    )


def check_images(spec: TaskFile, data: Path) -> DataReport:
    """What ``swarm task check`` says of one site's image folder: images per class, unreadable
    files, sizes and modes that will be converted; problems make the folder unusable."""
    from swarm.training.taskfile import default_site

    schema = ImageSchema.from_spec(spec)
    folder = Path(data)
    scan = scan_folder(schema, folder)
    problems = list(scan.problems)
    notes: list[str] = []
    unreadable: list[str] = []
    sizes: dict[tuple[int, int], int] = {}
    modes: dict[str, int] = {}
    readable: list[int] = []
    for path, label in zip(scan.files, scan.labels, strict=True):
        try:
            image = decode_image(schema, path)
        except SiteDataError as exc:
            unreadable.append(str(exc))
            continue
        readable.append(label)
        sizes[(image.width, image.height)] = sizes.get((image.width, image.height), 0) + 1
        modes[image.mode] = modes.get(image.mode, 0) + 1
    if unreadable:
        more = len(unreadable) - _LISTED
        listed = "; ".join(unreadable[:_LISTED]) + (f"; and {more} more" if more > 0 else "")
        problems.append(f"{len(unreadable)} unreadable image(s): {listed}")
    labels = np.asarray(readable, dtype=np.int64)
    counts = _counts(schema, labels)
    if not scan.problems:
        try:
            _check_classes(schema, folder, labels)
        except SiteDataError as exc:
            problems.append(str(exc))
    if scan.skipped:
        suffixes = sorted({p.suffix.lower() or "(none)" for p in scan.skipped})
        notes.append(
            f"{len(scan.skipped)} file(s) skipped, not {'/'.join(schema.extensions)}: "
            f"{', '.join(suffixes)}"
        )
    for name, count in zip(schema.classes, counts, strict=True):
        if count == 0:
            notes.append(f"class {name!r} has no images at this site")
        elif count == 1:
            notes.append(f"class {name!r} has 1 image: it goes to training, none to the test split")
    if sizes:
        notes.append(_sizes_note(sizes, schema.image_size))
    if modes:
        notes.append(_modes_note(modes, schema.channels))
    if labels.size:
        train, test = split_stratified(
            labels, spec.seed, default_site(folder), schema.test_fraction
        )
        notes.append(f"{train.size} train / {test.size} test images (seed {spec.seed})")
    return DataReport(
        site=default_site(folder),
        rows=int(labels.size),
        label_counts=dict(zip(schema.classes, counts, strict=True)),
        problems=problems,
        notes=notes,
    )


# --- helpers -----------------------------------------------------------------------------------


def _counts(schema: ImageSchema, labels: npt.NDArray[np.int64]) -> list[int]:
    """Images per class, in the task's class order."""
    return [int(n) for n in np.bincount(labels, minlength=len(schema.classes))]


def _check_classes(schema: ImageSchema, folder: Path, labels: npt.NDArray[np.int64]) -> None:
    counts = _counts(schema, labels)
    if labels.size == 0:
        raise SiteDataError(
            f"{folder}: no images ({'/'.join(schema.extensions)}) in the class folders "
            f"{', '.join(schema.classes)}"
        )
    present = [name for name, count in zip(schema.classes, counts, strict=True) if count]
    if len(present) < 2:
        raise SiteDataError(
            f"{folder}: images of one class only ({present[0]}, {labels.size} images): "
            "training needs at least two classes"
        )


def _sizes_note(sizes: Mapping[tuple[int, int], int], target: int) -> str:
    common = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in common[:3])
    more = f" and {len(common) - 3} other sizes" if len(common) > 3 else ""
    odd = []
    smaller = sum(n for (w, h), n in sizes.items() if min(w, h) < target)
    if smaller:
        odd.append(f"{smaller} smaller than {target} px (upscaled)")
    stretched = sum(n for (w, h), n in sizes.items() if w != h)
    if stretched:
        odd.append(f"{stretched} not square (stretched to {target}x{target})")
    return f"sizes: {shown}{more}" + (f"; {', '.join(odd)}" if odd else "")


def _modes_note(modes: Mapping[str, int], channels: int) -> str:
    target = "grayscale" if channels == 1 else "RGB"
    listed = ", ".join(f"{mode} ({n})" for mode, n in sorted(modes.items()))
    return f"pixel modes: {listed}; all converted to {target}"


@functools.lru_cache(maxsize=2)
def _read_weights(path: str, sha256: str, where: str) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``, read once per process, after its SHA-256 is checked (the
    bytes hashed are the bytes loaded)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TaskFileError(f"{where}: [model] weights {path}: cannot read ({exc})") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise TaskFileError(
            f"{where}: [model] weights {path} has SHA-256 {actual}, the task file says {sha256}"
        )
    try:
        loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load's unpickler raises many kinds; all mean "not weights"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskFileError(
            f"{where}: [model] weights {path} is not a torch.save'd state_dict ({first})"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise TaskFileError(f"{where}: [model] weights {path} is not a state_dict of tensors")
    return {_LEGACY_DENSENET.sub(r"\1\2", k): v for k, v in loaded.items()}


def _load_initial(
    model: nn.Module, weights: Mapping[str, torch.Tensor], schema: ImageSchema, where: str
) -> None:
    """Copy ``weights`` into ``model``: every tensor must be there with its shape, except the
    classifier head, which keeps its seeded values when its shape differs (module docstring)."""
    state = model.state_dict()
    head = _HEADS[schema.architecture]
    # files saved before torch 0.4.1 (torchvision's published ResNet and DenseNet weights among
    # them) have no BatchNorm batch counters: those keep the model's
    missing = [k for k in state if k not in weights and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in weights if k not in state]
    if missing or unexpected:
        raise TaskFileError(
            f"{where}: [model] weights {schema.weights} do not fit {schema.architecture}: "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}"
        )
    kept_head = []
    for name, value in weights.items():
        if value.shape == state[name].shape:
            state[name] = value.to(state[name].dtype)
        elif name.startswith(head):
            kept_head.append(name)
        else:
            raise TaskFileError(
                f"{where}: [model] weights {schema.weights}: {name} has shape "
                f"{list(value.shape)}, the model's is {list(state[name].shape)}"
                + (" (the task's channels differ from the weights')" if "conv" in name else "")
            )
    model.load_state_dict(state)
    if kept_head:
        log.debug(
            "initial weights %s: head %s of another shape left at its seeded values",
            schema.weights,
            ", ".join(kept_head),
        )


def _few(names: Sequence[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], where: str, name: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise TaskFileError(
            f"{where}: [{name}] has unknown key(s) {', '.join(unknown)}; known: "
            + ", ".join(allowed)
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _weights(spec: TaskFile, where: str) -> tuple[Path | None, str]:
    weights, sha = spec.model.get("weights"), spec.model.get("weights_sha256")
    if weights is None:
        if sha is not None:
            raise TaskFileError(f"{where}: [model] weights_sha256 given without weights")
        return None, ""
    if not isinstance(weights, str) or not weights:
        raise TaskFileError(f"{where}: [model] weights must be a file name, not {weights!r}")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise TaskFileError(
            f"{where}: [model] weights_sha256 (64 hex digits: sha256sum of {weights}) is "
            "required with weights"
        )
    path = spec.resolve(weights)
    if not path.is_file():
        raise TaskFileError(f"{where}: [model] weights {path}: no such file")
    return path, sha.lower()


def _classes(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise TaskFileError(
            f"{where}: [data] classes must list at least two class folder names, not {value!r}"
        )
    for name in value:
        if (
            not isinstance(name, str)
            or not name.strip()
            or name != name.strip()
            or name.startswith(".")
            or "/" in name
            or "\\" in name
        ):
            raise TaskFileError(
                f"{where}: [data] classes: {name!r} is not a folder name (no slashes, no "
                "leading dot or spaces)"
            )
    if len(set(value)) != len(value):
        raise TaskFileError(f"{where}: [data] classes lists a class twice: {value}")
    return tuple(value)


def _extensions(value: Any, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(e, str) and len(e) > 1 and e.startswith(".") for e in value)
    ):
        raise TaskFileError(
            f'{where}: [data] extensions must list file suffixes such as ".png", not {value!r}'
        )
    return tuple(e.lower() for e in value)


def _normalize(
    value: Any, channels: int, where: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if value is None:
        return (0.5,) * channels, (0.5,) * channels
    if not isinstance(value, dict) or set(value) != {"mean", "std"}:
        raise TaskFileError(
            f"{where}: [data] normalize must be {{ mean = [...], std = [...] }}, not {value!r}"
        )
    out = []
    for key in ("mean", "std"):
        numbers = value[key]
        if (
            not isinstance(numbers, list)
            or len(numbers) != channels
            or not all(_is_number(v) for v in numbers)
        ):
            raise TaskFileError(
                f"{where}: [data] normalize.{key} must list {channels} number(s) (one per "
                f"channel), not {numbers!r}"
            )
        out.append(tuple(float(v) for v in numbers))
    if not all(s > 0 for s in out[1]):
        raise TaskFileError(f"{where}: [data] normalize.std must be above 0, not {list(out[1])}")
    return out[0], out[1]
