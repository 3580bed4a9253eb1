"""Gradio building blocks shared by every tab (the only place in core that imports gradio)."""
