"""LoRA projects on disk: safe names, the folder layout and the `project.json` manifest.

Layout under `LORA_PROJECTS_DIR` (config key, default `LoRA_Projects_Internal/`)::

    <project>/
      project.json            manifest (below), written atomically
      data/<concept>/         prepared images + one .txt caption per image
      cache/                  trainer caches (latents, text embeddings)
      checkpoints/            trainer states
      samples/                sample images rendered during training

`project.json` holds ``{"name", "version", "created", "updated", "concepts": {concept:
{"images": {file: record}, "import": {...last import settings and counts}}}}``. Other parts
of the studio (the trainer) may add their own top-level keys: `update_manifest` keeps
whatever it does not touch. Each image record carries what SDXL needs for its time ids:
`original_size_hw` (image size before resizing, EXIF applied), `crop_top_left_yx` (crop
offset in the resized image) and `target_size_hw` (the saved image size = its bucket).

`data/manifest.json` is a flat view of the same records for the trainer's dataset scanner,
regenerated on every manifest update: ``{"images": [{"file": "<concept>/<name>.png",
"concept", "original_hw", "crop_yx", "target_size"}, ...]}`` (sizes as [h, w], crop as
[top, left], file relative to `data/`). Captions are not copied there: the `.txt` next to
each image stays the one truth, so editor changes need no manifest rewrite.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import StudioError
from core.paths import check_name, name_inside

from .fileio import write_json_atomic

MANIFEST_VERSION = 1
_manifest_lock = threading.RLock()  # prepare/caption jobs may run side by side


def safe_name(name: str, what: str = "project") -> str:
    """A project or concept name as the user typed it (NFC), or StudioError `paths.*`.

    Checked by core.paths: a name that would leave the projects folder, or that is not
    portable (reserved, control characters, ...), is refused with the reason, never
    silently rewritten (two different names must not land in the same folder)."""
    return check_name(name, what)


@dataclass
class ImageRecord:
    """One prepared image; sizes are (height, width) like SDXL's add_time_ids."""

    file: str  # file name inside data/<concept>/
    concept: str
    source: str  # where it came from (path or uploaded file name)
    sha256: str  # of the source file's bytes
    dhash: str  # 64-bit perceptual hash of the decoded image, hex
    original_size_hw: list[int]
    resized_size_hw: list[int]
    crop_top_left_yx: list[int]
    target_size_hw: list[int]
    upscaled: bool = False
    caption_source: str = "none"  # "copied" | "florence" | "edited" | "none"
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ImageRecord":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class Project:
    """A training project folder. Cheap to construct; `create()` makes the folders."""

    def __init__(self, root: str | Path, name: str) -> None:
        self.name = safe_name(name, "project")
        self.root = Path(root).resolve()
        self.dir = name_inside(self.root, self.name, "project")

    @classmethod
    def from_ctx(cls, ctx, name: str) -> "Project":
        return cls(ctx.path("LORA_PROJECTS_DIR"), name)

    # -- layout --------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.dir / "samples"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "project.json"

    def concept_dir(self, concept: str) -> Path:
        return self.data_dir / safe_name(concept, "concept")

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def create(self) -> "Project":
        for d in (self.data_dir, self.cache_dir, self.checkpoints_dir, self.samples_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.manifest_path.is_file():
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_json_atomic(self.manifest_path, {"name": self.name, "version": MANIFEST_VERSION,
                                                   "created": now, "updated": now, "concepts": {}})
        return self

    def concepts(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- manifest --------------------------------------------------------------------
    def load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {"name": self.name, "version": MANIFEST_VERSION, "concepts": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StudioError("lora_data.bad_manifest", path=str(self.manifest_path), error=str(exc)[:200]) from exc
        data.setdefault("concepts", {})
        return data

    def update_manifest(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write under a lock, then write atomically; returns the new manifest."""
        with _manifest_lock:
            self.create()
            data = self.load_manifest()
            change(data)
            data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_json_atomic(self.manifest_path, data)
            write_json_atomic(self.data_dir / "manifest.json", _flat_view(data))
            return data

    def records(self, concept: str | None = None) -> list[ImageRecord]:
        """Image records whose prepared file still exists, sorted by concept and file."""
        out: list[ImageRecord] = []
        concepts = self.load_manifest().get("concepts", {})
        for cname in sorted(concepts):
            if concept is not None and cname != safe_name(concept, "concept"):
                continue
            for rec in concepts[cname].get("images", {}).values():
                r = ImageRecord.from_json(rec)
                if (self.data_dir / cname / r.file).is_file():
                    out.append(r)
        return sorted(out, key=lambda r: (r.concept, r.file))

    def image_path(self, record: ImageRecord) -> Path:
        return self.data_dir / record.concept / record.file

    def caption_path(self, record: ImageRecord) -> Path:
        return self.image_path(record).with_suffix(".txt")


def _flat_view(data: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for cname in sorted(data.get("concepts", {})):
        for name in sorted(data["concepts"][cname].get("images", {})):
            rec = data["concepts"][cname]["images"][name]
            rows.append({"file": f"{cname}/{name}", "concept": cname, "original_hw": rec["original_size_hw"],
                         "crop_yx": rec["crop_top_left_yx"], "target_size": rec["target_size_hw"]})
    return {"version": MANIFEST_VERSION, "images": rows}


def list_projects(root: str | Path) -> list[str]:
    """Names of the projects (folders with a project.json) under `root`."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "project.json").is_file())
