"""Caption editor operations: exact results, only changed files written, paths confined."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from core.errors import StudioError
from modules.lora_training.data.captions import (add_tag, find_replace, load_items, remove_tag, save_captions,
                                                 set_caption, split_tags)
from modules.lora_training.data.project import Project


def test_find_replace_plain_and_regex() -> None:
    caps = {"a": "sks dog, red collar, grass", "b": "a photo of a cat", "c": "Dog on a sofa"}
    out, n = find_replace(caps, "dog", "puppy")
    assert n == 1 and out["a"] == "sks puppy, red collar, grass" and out["c"] == "Dog on a sofa"
    out, n = find_replace(caps, "dog", "puppy", case_sensitive=False)
    assert n == 2 and out["c"] == "puppy on a sofa"
    out, n = find_replace(caps, r"\b(\w+) collar", r"\1 scarf", regex=True)
    assert n == 1 and out["a"] == "sks dog, red scarf, grass"
    out, n = find_replace(caps, "red collar", "")  # a removal leaves no empty tag behind
    assert out["a"] == "sks dog, grass"
    out, n = find_replace(caps, "a", r"\1")  # plain mode: backslashes are literal
    assert out["b"].startswith(r"\1 photo")
    assert caps["a"] == "sks dog, red collar, grass"  # inputs untouched (pure)
    assert find_replace(caps, "", "x") == (caps, 0)
    with pytest.raises(StudioError) as e:
        find_replace(caps, "([", "", regex=True)
    assert e.value.key == "lora_data.bad_regex"


def test_tags() -> None:
    caps = {"a": "SKS, red collar", "b": "", "c": "Red Collar,  grass", "d": "sks dog"}
    out, n = add_tag(caps, "sks")  # whole tags compare, case-insensitively: "sks dog" is not "sks"
    assert n == 3 and out == {"a": "SKS, red collar", "b": "sks", "c": "sks, Red Collar,  grass", "d": "sks, sks dog"}
    out, n = add_tag(caps, "sks dog, smiling", position="end")
    assert out["a"] == "SKS, red collar, sks dog, smiling" and out["b"] == "sks dog, smiling"
    assert out["d"] == "sks dog, smiling"
    out, n = add_tag({"a": "sks, a man", "b": "a man"}, "portrait", keep_first="sks")  # trigger stays first
    assert out == {"a": "sks, portrait, a man", "b": "portrait, a man"}
    out, n = remove_tag(caps, "red  collar")
    assert n == 2 and out["a"] == "SKS" and out["c"] == "grass" and out["d"] == "sks dog"
    assert split_tags(" a, ,b ,") == ["a", "b"]
    out, n = set_caption(caps, "b", "  new\ncaption ")
    assert n == 1 and out["b"] == "new caption"


def test_load_and_save(tmp_path: Path) -> None:
    project = Project(tmp_path, "p").create()
    d = project.data_dir / "c"
    d.mkdir(parents=True)
    for name in ("x", "y", "z"):
        Image.new("RGB", (64, 64)).save(d / f"{name}.png")
    (d / "x.txt").write_text("sks, old", encoding="utf-8")
    items = load_items(project)
    assert [(i.image.name, i.caption) for i in items] == [("x.png", "sks, old"), ("y.png", ""), ("z.png", "")]
    original = {str(i.image): i.caption for i in items}
    caps, _ = add_tag(original, "sks")
    caps, _ = set_caption(caps, str(d / "z.png"), "only z")
    before = (d / "x.txt").stat().st_mtime_ns
    written = save_captions(project, caps, original)
    assert sorted(Path(w).name for w in written) == ["y.png", "z.png"]
    assert (d / "x.txt").stat().st_mtime_ns == before  # unchanged caption not rewritten
    assert (d / "y.txt").read_text(encoding="utf-8") == "sks"
    assert (d / "z.txt").read_text(encoding="utf-8") == "only z"
    assert not [p for p in d.iterdir() if p.name.startswith(".")]
    with pytest.raises(StudioError) as e:
        save_captions(project, {str(tmp_path / "evil.png"): "x"})
    assert e.value.key == "lora_data.outside_project"
    assert not (tmp_path / "evil.txt").exists()


def test_dataset_tag_tools() -> None:
    from modules.lora_training.data.captions import caption_stats, filter_by_tag, rename_tag, tag_frequency

    caps = {"a": "sks, 1girl, long hair, smile", "b": "sks, 1girl, Long_Hair", "c": "sks, 1boy, smile, long hair",
            "d": ""}
    assert tag_frequency(caps) == [("sks", 3), ("1girl", 2), ("long hair", 2), ("smile", 2), ("1boy", 1),
                                   ("Long_Hair", 1)]  # most frequent first, then by name
    freq = dict(tag_frequency(caps))
    assert freq["sks"] == 3 and freq["smile"] == 2 and freq["1boy"] == 1 and "" not in freq
    out, n = rename_tag(caps, "long hair", "long_hair")
    assert n == 2 and out["a"] == "sks, 1girl, long_hair, smile" and out["b"] == caps["b"]  # Long_Hair is another tag
    out, n = rename_tag(caps, "1girl", "sks")  # renaming onto a present tag leaves no duplicate
    assert out["a"] == "sks, long hair, smile" and out["b"] == "sks, Long_Hair" and n == 2
    with pytest.raises(StudioError):
        rename_tag(caps, "smile", "a, b")
    assert filter_by_tag(caps, "1girl") == ["a", "b"]
    assert filter_by_tag(caps, "smile, long hair") == ["a", "c"]
    assert filter_by_tag(caps, "1girl", exclude=True) == ["c", "d"]
    assert filter_by_tag(caps, "") == ["a", "b", "c", "d"]
    only = filter_by_tag(caps, "1girl")
    out, n = add_tag(caps, "solo", "end", only=only)
    assert n == 2 and out["a"].endswith(", solo") and out["c"] == caps["c"] and out["d"] == ""
    out, n = remove_tag(caps, "smile", only=only)
    assert n == 1 and out["a"] == "sks, 1girl, long hair" and out["c"] == caps["c"]
    s = caption_stats(caps)
    assert (s["captions"], s["empty"], s["tags_min"], s["tags_max"], s["tags_mean"]) == (4, 1, 0, 4, 2.8)
    assert s["chars_max"] == len("sks, 1girl, long hair, smile") and s["words_min"] == 0
