"""The Teacher interface: a frozen model that maps an image batch to class and patch tokens."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from subsets.errors import InputError


def to_normalized_tensor(mean, std) -> v2.Compose:
    """PIL image -> float tensor in [0, 1] -> normalised by mean and std (teachers and students alike)."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


@dataclass(frozen=True)
class TeacherInfo:
    name: str
    source: str  # where the weights came from: a file, a folder, a Hub id
    sha256: str  # of the weights
    resolution: int  # square input side in pixels
    patch_size: int  # pixels per patch-grid cell (a CNN's total stride)
    token_dim: int  # width of `cls` and `patch`
    embed_dim: int | None  # width of `embed`, where the teacher has one
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # intermediate maps `forward` also returns, by target name (`layer17_patch`): {"dim": D, "tokens": N}
    layers: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def grid(self) -> int:
        return self.resolution // self.patch_size

    def to_dict(self) -> dict:
        out = asdict(self) | {"grid": self.grid}
        if not self.layers:  # as caches made before intermediate layers record their teacher
            del out["layers"]
        return out


def layer_name(layer: int) -> str:
    """The target name of the intermediate map after layer L (DESIGN.md's `layerL_patch`)."""
    return f"layer{layer}_patch"


def is_layer(name: str) -> bool:
    """Whether a target is an intermediate map (`layerL_patch`)."""
    return name.startswith("layer") and name.endswith("_patch")


def check_layers(name: str, layers: tuple[int, ...], last: int, which: str) -> None:
    """Refuse, in one line, a layer outside 1..last (`which` says what those are)."""
    bad = [layer for layer in layers if not 1 <= layer <= last]
    if bad:
        raise InputError(f"{name}: layer {bad[0]} is not an intermediate layer (1..{last}{which})")


class Teacher(nn.Module):
    """Frozen, eval mode, no grad. `forward` returns `cls` [B, D], `patch` [B, N, D], maybe `embed`, and the
    intermediate maps `info.layers` names (`layerL_patch` [B, N_L, D_L]) where the teacher was built with them."""

    def __init__(self, info: TeacherInfo):
        super().__init__()
        self.info = info
        self.to_tensor = to_normalized_tensor(info.mean, info.std)
        self.transform = v2.Compose([
            v2.ToImage(),  # resize the uint8 tensor, as the recorded embeddings and caches were made
            v2.Resize(info.resolution, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(info.resolution),
            self.to_tensor,
        ])

    def freeze(self) -> Teacher:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # a teacher never leaves eval mode

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A whole image: resized, centre-cropped to the teacher's resolution, normalised."""
        return self.transform(image)

    def normalize(self, image: Image.Image) -> torch.Tensor:
        """An image already at the teacher's resolution (a stored view): to a normalised tensor."""
        return self.to_tensor(image)

    def autocast(self, x: torch.Tensor):
        """bf16 autocast on GPU (teachers are run for targets, not trained); plain fp32 on CPU. Each teacher's own
        forward enters it, so the cache, the target statistics, online training and evaluation compute alike."""
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda")


def state_dict_sha256(module: nn.Module) -> str:
    """A stable hash of a model's weights, for teachers that do not come from one file."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class TeacherEncoder:
    """Adapts a teacher to `subsets.embed.Encoder`: the embedding is the teacher's `cls`."""

    def __init__(self, teacher: Teacher):
        self.teacher = teacher
        self.name, self.sha256, self.dim = teacher.info.name, teacher.info.sha256, teacher.info.token_dim

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.teacher.preprocess(image)

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        return self.teacher(batch)["cls"]

    def to(self, device) -> TeacherEncoder:
        self.teacher.to(device)
        return self
