"""Caption editor operations: pure functions over {image path: caption} plus load/save.

The UI keeps the captions of a project in memory, applies these operations (edit one,
find-and-replace with plain text or a regex, add / remove / rename a comma-separated tag
across all captions or only the images a tag filter shows), shows the result with the tag
frequency table and caption length statistics, keeps the state before the last bulk edit
for Undo, and writes only what changed when the user clicks Save, each file atomically,
inside the project (the source folder of the import is never written). Functions return a new mapping and how many captions changed, so the
UI can say "12 captions changed, not saved yet" and tests can check exact results.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError

from .project import prepared_images
from .fileio import clean_caption, read_caption, write_text_atomic
from .project import Project

Captions = dict[str, str]  # str(image path) -> caption


@dataclass(frozen=True)
class CaptionItem:
    image: Path
    concept: str
    caption: str

    @property
    def caption_file(self) -> Path:
        return self.image.with_suffix(".txt")


def load_items(project: Project, concept: str | None = None) -> list[CaptionItem]:
    """Prepared images (sorted) with their current caption ('' when none)."""
    items = []
    for img in prepared_images(project, concept):
        txt = img.with_suffix(".txt")
        text = read_caption(txt)[0] if txt.is_file() else ""
        items.append(CaptionItem(img, img.parent.name, text))
    return items


def split_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _tidy(text: str) -> str:
    """Collapse spaces and the empty segments a removal leaves (`a, , b` -> `a, b`)."""
    text = clean_caption(text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip(" ,")


def set_caption(captions: Captions, image: str, text: str) -> tuple[Captions, int]:
    out = dict(captions)
    new = clean_caption(text)
    changed = int(out.get(image) != new)
    out[image] = new
    return out, changed


def find_replace(captions: Captions, find: str, replace: str, regex: bool = False,
                 case_sensitive: bool = True) -> tuple[Captions, int]:
    """Replace in every caption; `regex` enables Python regex syntax with \\1 groups."""
    if not find:
        return dict(captions), 0
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        pattern = re.compile(find if regex else re.escape(find), flags)
    except re.error as exc:
        raise StudioError("lora_data.bad_regex", pattern=find, error=str(exc)) from exc
    out, changed = {}, 0
    for key, text in captions.items():
        try:
            new = pattern.sub(replace, text) if regex else pattern.sub(lambda _m: replace, text)
        except (re.error, IndexError) as exc:  # e.g. a \2 with one group
            raise StudioError("lora_data.bad_regex", pattern=replace, error=str(exc)) from exc
        new = _tidy(new) if new != text else text
        changed += new != text
        out[key] = new
    return out, changed


def _norm(tag: str) -> str:
    return " ".join(tag.split()).lower()


def _scope(captions: Captions, only) -> Captions:
    """The captions a bulk edit may change: all, or the keys of `only` (a tag filter's result)."""
    if only is None:
        return captions
    keep = set(only)
    return {k: v for k, v in captions.items() if k in keep}


def add_tag(captions: Captions, tag: str, position: str = "start", keep_first: str = "",
            only=None) -> tuple[Captions, int]:
    """Add tag(s) (comma-separated) where missing, at the start or the end.

    `keep_first`: the trigger word; when a caption starts with it, "start" means right
    after it, so the trigger stays the first tag.
    """
    tags = split_tags(tag)
    first = _norm(keep_first)
    out, changed = dict(captions), 0
    for key, text in _scope(captions, only).items():
        parts = split_tags(text)
        have = {_norm(t) for t in parts}
        missing = [t for t in tags if _norm(t) not in have]
        if not missing:
            out[key] = text
            continue
        if position != "start":
            out[key] = ", ".join(([text] if text else []) + missing)
        elif first and parts and _norm(parts[0]) == first:
            out[key] = ", ".join([parts[0], *missing, *parts[1:]])
        else:
            out[key] = ", ".join(missing + ([text] if text else []))
        changed += 1
    return out, changed


def remove_tag(captions: Captions, tag: str, only=None) -> tuple[Captions, int]:
    """Remove every comma-separated tag equal to one of `tag` (case and spacing ignored)."""
    drop = {_norm(t) for t in split_tags(tag)}
    out, changed = dict(captions), 0
    for key, text in _scope(captions, only).items():
        tags = split_tags(text)
        kept = [t for t in tags if _norm(t) not in drop]
        if len(kept) == len(tags):
            out[key] = text
            continue
        out[key] = ", ".join(kept)
        changed += 1
    return out, changed


def rename_tag(captions: Captions, old: str, new: str, only=None) -> tuple[Captions, int]:
    """Rename a whole tag everywhere (case and spacing ignored); no duplicate when `new` is there."""
    src, dst = _norm(old), clean_caption(new).strip(", ")
    if not src or not dst or "," in dst:
        raise StudioError("lora_data.bad_rename", old=old, new=new)
    out, changed = dict(captions), 0
    for key, text in _scope(captions, only).items():
        tags = split_tags(text)
        if src not in {_norm(t) for t in tags}:
            continue
        renamed, seen = [], set()
        for t in tags:
            t = dst if _norm(t) == src else t
            if _norm(t) not in seen:
                seen.add(_norm(t))
                renamed.append(t)
        new_text = ", ".join(renamed)
        if new_text != text:
            out[key] = new_text
            changed += 1
    return out, changed


def tag_frequency(captions: Captions) -> list[tuple[str, int]]:
    """(tag, number of captions that have it), most frequent first, then by name."""
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}
    for text in captions.values():
        for t in {_norm(t): t for t in split_tags(text)}.items():
            counts[t[0]] = counts.get(t[0], 0) + 1
            shown.setdefault(t[0], t[1])
    return sorted(((shown[k], n) for k, n in counts.items()), key=lambda x: (-x[1], x[0].lower()))


def filter_by_tag(captions: Captions, tag: str, exclude: bool = False) -> list[str]:
    """Keys whose caption has every tag of `tag` (comma-separated), or lacks one when `exclude`."""
    want = {_norm(t) for t in split_tags(tag)}
    if not want:
        return list(captions)
    return [k for k, text in captions.items() if (want <= {_norm(t) for t in split_tags(text)}) != exclude]


def caption_stats(captions: Captions) -> dict[str, float]:
    """Length statistics: captions, empty ones, and min / mean / max of tags, words, characters."""
    texts = list(captions.values())
    out: dict[str, float] = {"captions": len(texts), "empty": sum(not t.strip() for t in texts)}
    for name, measure in (("tags", lambda t: len(split_tags(t))), ("words", lambda t: len(t.split())),
                          ("chars", len)):
        vals = [measure(t) for t in texts] or [0]
        out |= {f"{name}_min": min(vals), f"{name}_mean": round(sum(vals) / len(vals), 1), f"{name}_max": max(vals)}
    return out


def save_captions(project: Project, captions: Captions, original: Captions | None = None) -> list[str]:
    """Write the captions that differ from `original` (all when None); returns written paths."""
    root = project.data_dir.resolve()
    written = []
    for key, text in captions.items():
        if original is not None and original.get(key) == text:
            continue
        img = Path(key).resolve()
        if root not in img.parents:
            raise StudioError("lora_data.outside_project", path=key, project=project.name)
        write_text_atomic(img.with_suffix(".txt"), clean_caption(text))
        written.append(key)
    if written and project.manifest_path.is_file():
        names = {(Path(k).parent.name, Path(k).name) for k in written}

        def change(data: dict) -> None:
            for concept, name in names:
                rec = data["concepts"].get(concept, {}).get("images", {}).get(name)
                if rec is not None:
                    rec["caption_source"] = "edited"
        project.update_manifest(change)
    return written
