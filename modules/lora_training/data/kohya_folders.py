"""Import a kohya-style training folder: one sub-folder per concept, named `<repeats>_<name>`.

`train/10_mychar/` becomes the concept `mychar` with 10 repeats (recorded in project.json
under `concepts.<name>.repeats` and in the trainer's flat manifest); a sub-folder without the
prefix is a concept with 1 repeat. Each sub-folder goes through the normal importer (buckets,
dedupe, captions, masks). Images without a `.txt` stay uncaptioned here (the Caption step
or the editor fills them); kohya's "folder name as caption" rule applies when such a folder
is trained directly as `data_dir` (train/dataset.py).
"""
from __future__ import annotations

from pathlib import Path

from core.errors import StudioError

from ..train.concepts import MASK_DIR, parse_concept_dir
from .importer import ImportOptions, ImportReport, import_images
from .project import Project, safe_name


def concept_folders(source_dir: str | Path) -> list[tuple[Path, str, int]]:
    """(folder, concept, repeats) of every visible sub-folder, sorted by name."""
    src = Path(source_dir).expanduser()
    if not src.is_dir():
        raise StudioError("lora_data.source_missing", path=str(src))
    out = []
    for d in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != MASK_DIR):
        repeats, concept = parse_concept_dir(d.name)
        out.append((d, safe_name(concept, "concept"), repeats))
    return out


def import_kohya_folders(project: Project, source_dir: str | Path, options: ImportOptions | None = None,
                         job=None) -> list[ImportReport]:
    folders = concept_folders(source_dir)
    if not folders:
        raise StudioError("lora_data.no_images", path=str(source_dir))
    reports = []
    for folder, concept, repeats in folders:
        if job is not None and job.should_stop():
            break
        rep = import_images(project, concept, folder, options=options, job=job)
        project.set_repeats(concept, repeats)
        reports.append(rep)
        if rep.stopped:
            break
    return reports
