"""Stage 0: the user's own video (mp4, mov, webm, gif, or a folder of frames) -> RGBA frames.

``frames`` reads videos and chooses frames, ``matting`` gives them an alpha channel (``background``,
``rembg_models``, ``masks``), ``report`` checks the result, ``preview`` draws the contact sheet and
``pipeline`` is the one call that ``prepare_video.py`` makes.
"""
