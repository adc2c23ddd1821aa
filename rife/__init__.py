"""RIFE HD v3 frame interpolation (the flow network Efficient4D ships as model/flownet.pkl)."""
from rife.ifnet import IFNet
from rife.model import chunked_inference, inference, load_flownet, pad_to_multiple
from rife.warp import warp

__all__ = ["IFNet", "chunked_inference", "inference", "load_flownet", "pad_to_multiple", "warp"]
