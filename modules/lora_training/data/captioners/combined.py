"""`combined` captions: booru tags from a WD14 tagger, then one sentence from Florence-2 or a VLM.

The kohya/OneTrainer habit for anime bases that also read natural language:
`trigger, 1girl, long hair, smile, A girl with long hair smiling in a park.` The sentence
model runs on the same batch (Florence-2 with its short `<CAPTION>` task, a VLM with a
one-sentence prompt); only its first sentence is kept.
"""
from __future__ import annotations

from dataclasses import replace

from .base import SENTENCE_PROMPT, CaptionOptions, Captioner, first_sentence


class CombinedCaptioner(Captioner):
    kind = "combined"

    def __init__(self, tagger: Captioner, sentence: Captioner) -> None:
        self.tagger, self.sentence = tagger, sentence

    def caption(self, images: list, opts: CaptionOptions) -> list[str]:
        tags = self.tagger.caption(images, opts)
        if self.sentence.kind == "florence":
            sopts = replace(opts, task="<CAPTION>")
        else:
            sopts = replace(opts, prompt=opts.prompt if opts.extra.get("custom_prompt") else SENTENCE_PROMPT,
                            max_new_tokens=min(opts.max_new_tokens, 77))
        sentences = [first_sentence(s) for s in self.sentence.caption(images, sopts)]
        return [", ".join(p for p in (t, s) if p) for t, s in zip(tags, sentences)]
