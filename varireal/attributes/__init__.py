"""The attributes an edit changes, one module each (background, color, texture), and what they share.

- kind.py       AttributeMethod: what the pipeline knows of an attribute (settings, method, pipelines,
                value-list scope, what the prompt LLM is told)
- background.py, color.py, texture.py   one attribute each: its settings, its method, its definition
- steps.py      the shared diffusion steps (text-to-image, inpainting, ControlNet + IP-Adapter
                regeneration, prompt weighting); step_settings.py, their settings
- pipelines.py  the pipelines the steps run on (Editors), loaded from the models lock
- image_ops.py  pure image operations (work square, dilation, tint and blend, swatch, canny)
- registry.py   every attribute by name
"""
