"""The names of the transformers teachers: registry name -> Hugging Face Hub id, and the config.json model types
each family loads. Kept apart from the teachers themselves, so naming and listing them does not load torch."""

from __future__ import annotations

DINO_HUB_IDS = {
    "dinov2_vits14": "facebook/dinov2-small",
    "dinov2_vitb14": "facebook/dinov2-base",
    "dinov2_vitl14": "facebook/dinov2-large",
    "dinov2_vitg14": "facebook/dinov2-giant",
    "dinov2_vits14_reg": "facebook/dinov2-with-registers-small",
    "dinov2_vitb14_reg": "facebook/dinov2-with-registers-base",
    "dinov2_vitl14_reg": "facebook/dinov2-with-registers-large",
    "dinov2_vitg14_reg": "facebook/dinov2-with-registers-giant",
    # gated on the Hub: accept the DINOv3 licence there before downloading
    "dinov3_vits16": "facebook/dinov3-vits16-pretrain-lvd1689m",
    "dinov3_vits16plus": "facebook/dinov3-vits16plus-pretrain-lvd1689m",
    "dinov3_vitb16": "facebook/dinov3-vitb16-pretrain-lvd1689m",
    "dinov3_vitl16": "facebook/dinov3-vitl16-pretrain-lvd1689m",
    "dinov3_vith16plus": "facebook/dinov3-vith16plus-pretrain-lvd1689m",
    "dinov3_vit7b16": "facebook/dinov3-vit7b16-pretrain-lvd1689m",
}
DINO_MODEL_TYPES = ("dinov2", "dinov2_with_registers", "dinov3_vit")

CLIP_HUB_IDS = {
    "clip_vitb32": "openai/clip-vit-base-patch32",
    "clip_vitb16": "openai/clip-vit-base-patch16",
    "clip_vitl14": "openai/clip-vit-large-patch14",
}
CLIP_MODEL_TYPES = ("clip", "clip_vision_model")  # a whole CLIP model, or its image tower saved alone

SIGLIP_HUB_IDS = {
    "siglip_vitb16": "google/siglip-base-patch16-224",
    "siglip_vitl16": "google/siglip-large-patch16-256",
    "siglip_so400m14": "google/siglip-so400m-patch14-384",
    "siglip2_vitb16": "google/siglip2-base-patch16-224",
    "siglip2_vitl16": "google/siglip2-large-patch16-256",
    "siglip2_so400m14": "google/siglip2-so400m-patch14-384",
}
SIGLIP_MODEL_TYPES = ("siglip", "siglip_vision_model")  # SigLIP, and SigLIP 2's fixed-resolution models

HUB_IDS = DINO_HUB_IDS | CLIP_HUB_IDS | SIGLIP_HUB_IDS
TIMM = "timm"  # folder_model_type of a folder saved by timm
LOADABLE_TYPES = DINO_MODEL_TYPES + CLIP_MODEL_TYPES + SIGLIP_MODEL_TYPES + (TIMM,)
