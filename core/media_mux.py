"""Containers and codecs for `core.media_video.VideoWriter`: which encoders a container can
hold, and the audio of a source muxed next to an encoded video.

A container accepts only some codecs: WebM holds VP8/VP9/AV1 with Opus/Vorbis, never
H.264 or AAC. Writing an upscaled `.webm` with libx264 used to produce a file players
refuse. `video_encoder_for` keeps the asked encoder when the container takes it and
otherwise picks the first that fits (VP9 for WebM; the writer logs the switch); `audio_encoder_for` picks the audio
encoder for a re-encode (AAC, or Opus where AAC does not fit). A muxer that does not say
what it takes (MPEG-PS/TS report nothing through PyAV) is trusted with the asked codec.

`remux(video, audio_source, out, copy, end)` writes `out` = the video packets + the
source's audio, copied as is when the container takes the codec, else re-encoded.
"""
from __future__ import annotations

import heapq
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av

# encoder -> codec name as containers list it
ENCODER_CODEC = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9", "libvpx": "vp8",
                 "libsvtav1": "av1", "mpeg4": "mpeg4"}
# tried in this order when the container refuses the asked encoder
VIDEO_PREFERENCE = ("libx264", "libvpx-vp9", "libx265", "libsvtav1", "mpeg4")
AUDIO_PREFERENCE = (("aac", "aac"), ("libopus", "opus"))  # (encoder, codec)
# audio codecs copied as is into MP4/MOV: the ones browsers and common players decode;
# anything else (PCM, Vorbis, WMA...) is re-encoded to AAC so the file plays everywhere
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


def video_encoder_for(codecs, encoder: str, available) -> str:
    """`encoder` if a container taking `codecs` (its `supported_codecs`) holds its codec, else
    the first preferred encoder that fits and this ffmpeg has (`available(name) -> bool`).
    An empty `codecs` (a muxer that does not say) keeps `encoder`."""
    codecs = frozenset(codecs or ())
    if not codecs or ENCODER_CODEC.get(encoder, encoder) in codecs:
        return encoder
    for cand in VIDEO_PREFERENCE:
        if ENCODER_CODEC[cand] in codecs and available(cand):
            return cand
    return encoder  # nothing fits: let the muxer say why


def audio_encoder_for(oc) -> str:
    """AAC where the open output container takes it, else Opus (WebM)."""
    codecs = frozenset(oc.supported_codecs)
    for enc, codec in AUDIO_PREFERENCE:
        if not codecs or codec in codecs:
            return enc
    return "aac"


def open_output(path: Path, faststart: bool = True):
    # MP4/MOV: index at the front so browsers start playing before the whole file loads
    mp4 = faststart and path.suffix.lower() in (".mp4", ".m4v", ".mov")
    return av.open(str(path), "w", options={"movflags": "+faststart"} if mp4 else None)


def _packets(container, stream, end: Optional[float]):
    """(time, packet) of one stream in decode order, stopping at `end` seconds."""
    for pkt in container.demux(stream):
        if pkt.dts is None:
            continue
        if end is not None and pkt.pts is not None and float(pkt.pts * pkt.time_base) >= end:
            break
        yield float(pkt.dts * pkt.time_base), pkt


def _encoded_packets(container, stream, out_stream, end: Optional[float]):
    """Decode the source audio and re-encode it (when it cannot be copied)."""
    rate = out_stream.codec_context.sample_rate
    start, seen = None, 0  # output pts from the source's own clock (its rate may differ)
    for frame in container.decode(stream):
        if end is not None and frame.time is not None and frame.time >= end:
            break
        if start is None:  # keep the source's start offset, in samples
            start = round((frame.time or 0.0) * rate)
        src_rate = frame.sample_rate or rate
        frame.pts, frame.time_base = round(seen * rate / src_rate), Fraction(1, rate)
        frame.pts += start
        seen += frame.samples
        for pkt in out_stream.encode(frame):  # PyAV resamples to the encoder's rate/format
            yield float(pkt.dts * pkt.time_base), pkt
    for pkt in out_stream.encode(None):
        yield float(pkt.dts * pkt.time_base), pkt


def remux(video: Path, audio: Path, out: Path, copy: bool, end: Optional[float],
          fps: Optional[Fraction] = None) -> bool:
    """Write `out` = video packets + audio (copied or re-encoded); False if `audio` has none.
    `fps`: the video's frame rate, written in the header (MKV/WebM store 1 ms ticks, from
    which a reader would guess 30000/1001 for 30 fps)."""
    with av.open(str(audio)) as ain:
        if not ain.streams.audio:
            return False
        a_in = ain.streams.audio[0]
        cc = a_in.codec_context
        with av.open(str(video)) as vin, open_output(out) as oc:
            vs = vin.streams.video[0]
            v_out = oc.add_stream_from_template(vs)
            if fps:
                v_out.codec_context.framerate = fps
            if copy:
                mp4 = out.suffix.lower() in (".mp4", ".m4v", ".mov")
                if cc.name not in oc.supported_codecs or (mp4 and cc.name not in MP4_AUDIO_COPY):
                    raise ValueError(f"{cc.name} audio cannot be copied into {out.suffix}")
                a_out = oc.add_stream_from_template(a_in)
                audio_pk = _packets(ain, a_in, end)
            else:
                enc = audio_encoder_for(oc)
                rate = cc.sample_rate or 48000
                if enc == "libopus" and rate not in OPUS_RATES:
                    rate = 48000  # Opus takes only these rates: PyAV resamples
                a_out = oc.add_stream(enc, rate=rate)
                n = cc.layout.nb_channels if cc.layout else 2  # sources may say "1 channels"
                a_out.layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(n, "stereo")
                a_out.bit_rate = 192_000 if enc == "aac" else 128_000
                audio_pk = _encoded_packets(ain, a_in, a_out, end)
            # interleave by time so players read both streams smoothly
            merged = heapq.merge(((t, 0, p) for t, p in _packets(vin, vs, None)),
                                 ((t, 1, p) for t, p in audio_pk), key=lambda x: (x[0], x[1]))
            for _, which, pkt in merged:
                pkt.stream = v_out if which == 0 else a_out
                oc.mux(pkt)
    return True
