"""SyncDreamer / Efficient4D diffusion model (inference)."""
