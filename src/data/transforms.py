"""Bringing any image to the model's (channels, size, size) uint8 form, DCGAN-style.

Resize the shorter side to `size` (bilinear, antialiased), then center-crop: the transform
of the PyTorch DCGAN example (`Resize(size)` + `CenterCrop(size)`). Channels: grey is
repeated to RGB; RGB becomes grey by ITU-R 601-2 luma (PIL's "L"); alpha is dropped.
"""

import io

import torch
from PIL import Image

LUMA = torch.tensor([0.299, 0.587, 0.114])


def fit_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3, 4} -> uint8 (N, channels, size, size)."""
    if images.shape[1] == 4:
        images = images[:, :3]
    if images.shape[-2:] != (size, size):
        import torchvision.transforms.v2.functional as TF  # ~1.3 s to import: only when used

        images = TF.center_crop(TF.resize(images, size, antialias=True), [size, size])
    if images.shape[1] == channels:
        return images.contiguous()
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    grey = torch.einsum("nchw,c->nhw", images.float(), LUMA).round().clamp(0, 255)
    return grey.to(torch.uint8).unsqueeze(1)


def fit_pil(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """A PIL image (any mode: L, RGB, RGBA, P, ...) -> uint8 (channels, size, size)."""
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    tensor = pixels.view(image.height, image.width, len(image.getbands())).permute(2, 0, 1)
    return fit_images(tensor.unsqueeze(0), size, channels)[0]


def decode(data: bytes, size: int, channels: int) -> torch.Tensor:
    """Encoded image bytes (PNG, JPEG, WebP, ...) -> uint8 (channels, size, size)."""
    with Image.open(io.BytesIO(data)) as image:
        return fit_pil(image, size, channels)
