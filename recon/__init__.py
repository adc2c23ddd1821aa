"""Stage 6: confidence-aware 4D Gaussian reconstruction from the converter's dataset.

dataset.py    converter JSON + images + confidence maps -> views with true cameras
gaussians.py  4D Gaussians (Yang et al., ICLR 2024): conditional 3D slice at time t
init.py       initial 4D points inside the object's visual hull, frame by frame
densify.py    3DGS-style clone / split / prune / opacity reset, with the optimizer bookkeeping
rasterizer.py cameras, EWA projection and the plain PyTorch reference rasteriser
fast_rasterizer.py  the fast pure-PyTorch rasteriser (hand-written compositing backward)
backends.py   which rasteriser runs (torch / reference / gsplat), the gsplat adapter and version check
loss.py       confidence-weighted L1 + D-SSIM, PSNR
trainer.py    the training loop, previews and checkpoints
render.py     test-view metrics, orbit / time videos, .ply per time
ply.py        3D Gaussian Splatting .ply layout
synthetic.py  a synthetic dynamic scene written as a converter-format dataset (tests, benchmark)
pipeline.py   load -> train (or resume) -> outputs: what reconstruct.py calls
"""
