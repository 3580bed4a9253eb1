"""The full studio (every module's tab) launches and serves its page and API description.

Gradio refuses to launch when its own HEAD / fails, and that page fails when any component
puts a non-JSON value (a gr.I18n entry as a Dataframe header, say) into the API description:
one such widget in any tab takes the whole studio down. Cheap to check without a browser."""
from __future__ import annotations

import httpx


def test_full_studio_launches_and_describes_its_api(ctx):
    from core.shell import launch
    from tests.e2e.browser import free_port

    port = free_port()
    demo = launch(ctx, port=port, block=False)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.head(base + "/", timeout=30).status_code == 200
        info = httpx.get(base + "/gradio_api/info", timeout=60)
        assert info.status_code == 200 and info.json()["named_endpoints"]
    finally:
        demo.close()
