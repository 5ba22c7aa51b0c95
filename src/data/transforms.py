"""Bringing any image to the model's (channels, size, size) uint8 form, DCGAN-style.

Resize the shorter side to `size` (bilinear, antialiased), then center-crop: the transform
of the PyTorch DCGAN example (`Resize(size)` + `CenterCrop(size)`). Channels: grey is
repeated to RGB; RGB becomes grey by ITU-R 601-2 luma (PIL's "L"); alpha is dropped.
"""

import io

import numpy as np
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


def eight_bit(image: Image.Image) -> Image.Image:
    """An image of any bit depth PIL opens as 8 bits a channel: 16-bit grey (PNG, TIFF: modes
    I;16*, or I holding 16-bit values) keeps its top 8 bits, 32-bit integers are taken as 16-bit
    values above 255, floats as [0, 1] (or [0, 255] when larger); PIL's own `convert` would clip
    them at 255 (a 16-bit image turns white). 8-bit modes pass as they are."""
    if image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.uint16) >> 8
    elif image.mode == "I":
        values = np.asarray(image, dtype=np.int64).clip(0, 65535)
        values = values >> 8 if values.max(initial=0) > 255 else values
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        values = (values * 255 if values.max(initial=0) <= 1 else values).round().clip(0, 255)
    else:
        return image
    return Image.fromarray(values.astype(np.uint8), mode="L")


def fit_pil(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """A PIL image (any mode: L, RGB, RGBA, P, CMYK, 16-bit grey, ...) -> uint8
    (channels, size, size)."""
    image = eight_bit(image).convert("L" if channels == 1 else "RGB")
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    tensor = pixels.view(image.height, image.width, len(image.getbands())).permute(2, 0, 1)
    return fit_images(tensor.unsqueeze(0), size, channels)[0]


def decode(data: bytes, size: int, channels: int) -> torch.Tensor:
    """Encoded image bytes (PNG, JPEG, WebP, ...) -> uint8 (channels, size, size)."""
    with Image.open(io.BytesIO(data)) as image:
        return fit_pil(image, size, channels)
