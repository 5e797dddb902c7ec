"""Generated image folders for the image-folder task: red circles and blue squares, each
hospital on a background of its own tint (tests/e2e/test_image_task.py, the model-size bench)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

#: images per class at each hospital: 1 goes to the test split, 5 to training (5 + 5 = 10 rows,
#: batches of 4, 4, 2: no batch of one row, which BatchNorm cannot normalise at 1x1)
PER_CLASS = 6
CLASSES = ("circle", "square")


def make_hospital(folder: Path, hospital: int) -> Path:
    """One hospital's folder: ``circle/`` and ``square/``, :data:`PER_CLASS` images each."""
    for label, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(PER_CLASS):
            img = Image.new("RGB", (40, 40), (20 + 30 * (hospital % 8), 20 + 3 * index, 30))
            box = (6 + index, 6, 32, 32 - index % 3)
            draw = ImageDraw.Draw(img)
            if label == 0:
                draw.ellipse(box, fill=(220, 40, 40))
            else:
                draw.rectangle(box, fill=(40, 40, 220))
            img.save(folder / name / f"{hospital}-{index:02d}.png")
    return folder
