"""The Consistent4D evaluation protocol: layout, metrics (PSNR, SSIM, LPIPS, CLIP, FVD), rendering, reports."""
