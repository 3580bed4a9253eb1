"""REST routes of the classifier, mounted by the shell under /api:

- `GET  /api/classifier/models`                  saved models with their classes
- `POST /api/classifier/{model}/predict`         multipart `file` (an image) ->
  `{"model", "backend", "predictions": [{"label", "index", "probability"}, ...]}`;
  query `top_k` (1-100, default 5) and `backend` (auto | torch | onnx).

Errors: 404 unknown model, 415 a file that is not a readable image, 413 a file over
MAX_UPLOAD_MB, 422 a missing file or bad query value (FastAPI names the field).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from core.errors import StudioError


def _predictor(ctx, name: str, backend: str):
    """A Predictor cached in the model manager (kept between requests, freed on demand)."""
    from modules.image_classifier.backbone import model_folder
    from modules.image_classifier.predict import Predictor

    folder = model_folder(ctx, name)
    stamp = max(f.stat().st_mtime_ns for f in folder.iterdir() if f.is_file())  # retrained -> reload
    key = f"{folder}:{backend}:{stamp}"
    return ctx.models.load("clf.api", key, lambda: Predictor(folder, backend, "cpu"), keep=True)


def build_router(ctx) -> APIRouter:
    router = APIRouter(tags=["classifier"])

    @router.get("/classifier/models")
    def models() -> list[dict]:
        from modules.image_classifier.backbone import list_classifiers, read_meta

        root = ctx.path("CLASSIFIERS_DIR")
        out = []
        for name in list_classifiers(root):
            meta = read_meta(root / name)
            out.append({"name": name, "classes": meta["class_names"], "backbone": meta.get("backbone"),
                        "onnx": (root / name / "model.onnx").is_file(), "metrics": meta.get("metrics", {})})
        return out

    @router.post("/classifier/{model}/predict")
    def predict(model: str, file: UploadFile = File(...), top_k: int = Query(5, ge=1, le=100),
                backend: Literal["auto", "torch", "onnx"] = Query("auto")) -> dict:
        from core.media import load_image

        try:
            predictor = _predictor(ctx, model, backend)
        except StudioError as exc:
            code = 404 if exc.key == "clf.model_unknown" else 409
            raise HTTPException(code, exc.render(ctx.t)) from exc
        limit = int(ctx.config.get("MAX_UPLOAD_MB", 512)) * 2**20
        data = file.file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, ctx.t("clf.api.too_large", mb=limit // 2**20))
        suffix = Path(file.filename or "upload").suffix[:10]
        with tempfile.TemporaryDirectory(prefix="clf-upload-") as tmp:
            path = Path(tmp) / ("upload" + suffix)
            path.write_bytes(data)
            try:
                image = load_image(path, mode="RGB")
            except StudioError as exc:
                raise HTTPException(415, ctx.t("clf.api.not_image", name=file.filename or "?",
                                               error=exc.render(ctx.t))) from exc
        preds = predictor.predict([image], top_k=top_k)[0]
        return {"model": model, "backend": predictor.backend, "predictions": preds}

    return router
