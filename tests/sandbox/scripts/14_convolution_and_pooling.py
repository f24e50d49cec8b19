import torch
import torch.nn as nn

# A 3x3 input and a 2x2 filter: the filter slides over the input -> a 2x2 output
image = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
image = image.view(1, 1, 3, 3)  # (N, C, H, W)
conv = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=2, bias=False)
with torch.no_grad():
    conv.weight[:] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
out = conv(image)
print(out.shape)
print(out)


# the same by hand: each output is the sum of the window times the filter
def convolve(matrix, kernel):
    k = len(kernel)
    n = len(matrix) - k + 1
    return [
        [
            sum(matrix[i + a][j + b] * kernel[a][b] for a in range(k) for b in range(k))
            for j in range(n)
        ]
        for i in range(n)
    ]


print(convolve([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 0], [0, 1]]))

# Max pooling: a 4x4 matrix cut into four 2x2 blocks, the max of each -> 2x2
x = torch.tensor(
    [[1.0, 3.0, 2.0, 0.0], [5.0, 4.0, 1.0, 7.0], [0.0, 2.0, 9.0, 8.0], [6.0, 1.0, 3.0, 4.0]]
)
pool = nn.MaxPool2d(kernel_size=2, stride=2)
pooled = pool(x.view(1, 1, 4, 4))  # (N, C, H, W)
print(pooled.view(2, 2))
print(x.numel(), "features ->", pooled.numel(), "features")
print(nn.AvgPool2d(2)(x.view(1, 1, 4, 4)).view(2, 2))

# An RGB 5x5 picture: 3 channels of 5x5 = 75 input features
picture = torch.rand(1, 3, 5, 5)
print("input features:", picture.numel())
# one 3x3 filter for each colour channel -> three 3x3 matrices = 27 features
conv_rgb = nn.Conv2d(in_channels=3, out_channels=3, kernel_size=3, groups=3)
features = conv_rgb(picture)
print(features.shape, "features:", features.numel())

# "the output has 6 channels": 6 filters, each looking at all 3 input channels
conv6 = nn.Conv2d(3, 6, 3)
print(conv6(picture).shape)
print(conv6.weight.shape, conv6.bias.shape)
# the filter values are model parameters, learned in training
print(conv6.weight.requires_grad)
print(sum(p.numel() for p in conv6.parameters()))
