import numpy as np
import torch
from torchvision import transforms

# a tiny 2x3 RGB "image": height, width, channels, values 0..255
image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
print(image.shape, image.dtype)

# ToTensor: (H, W, C) uint8 -> (C, H, W) float in [0, 1]
to_tensor = transforms.ToTensor()
t = to_tensor(image)
print(t.shape, t.dtype)
print(t[0])

# Normalize: (x - mean) / std for every channel
normalize = transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
n = normalize(t)
print(n[0])
print(t[0, 0, 0].item())  # the input is left unchanged

composed = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])]
)
print(composed)
out = composed(image)
print(out.shape)
print(f"min {out.min().item():.4f} max {out.max().item():.4f}")

# your own function as a transform
double = transforms.Lambda(lambda x: x * 2)
pipeline = transforms.Compose([transforms.ToTensor(), double])
print(pipeline(image)[2])

# float arrays are not scaled
floats = np.ones((2, 2, 1), dtype=np.float32) * 3
print(transforms.ToTensor()(floats))
print(torch.equal(composed(image), normalize(to_tensor(image))))
