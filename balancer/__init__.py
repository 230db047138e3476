"""comfyui-balancer: one URL in front of many ComfyUI backends."""

__version__ = "0.1.0"
