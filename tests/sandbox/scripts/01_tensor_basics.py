import torch
import numpy as np

# empty, zeros, ones: give the dimensions
x = torch.empty(2, 3)
print(x.size())
x = torch.zeros(2, 2)
print(x)
x = torch.ones(2, 2, dtype=torch.int)
print(x.dtype)
print(x.size())

# random values
x = torch.rand(2, 2)
print(x)

# a tensor from data
x = torch.tensor([2.5, 0.1])
print(x)
print(type(x), isinstance(x, torch.Tensor))

# operations
x = torch.rand(2, 2)
y = torch.rand(2, 2)
z = x + y
z = torch.add(x, y)
print(z)
# a trailing underscore works in place
y.add_(x)
print(y)
z = x - y
z = torch.sub(x, y)
z = x * y  # element wise
z = torch.mul(x, y)
print(z)
z = x / y
print(z.shape)

# slicing like numpy
x = torch.rand(5, 3)
print(x)
print(x[:, 0])
print(x[1, :])
print(x[1, 1])
# one value out of a tensor
print(x[1, 1].item())

# reshape with view: -1 is worked out from the other dimensions
x = torch.ones(2, 2)
y = x.view(4, -1)
print(y.size())
x = torch.randn(4, 4)
y = x.view(16)
z = x.view(-1, 8)
print(x.size(), y.size(), z.size())

# torch -> numpy: both share the same memory
a = torch.ones(5)
print(a)
b = a.numpy()
print(b)
print(type(b))
a.add_(1)
print(a)
print(b)

# numpy -> torch
a = np.ones(5)
b = torch.from_numpy(a)
print(a)
print(b)
a += 1
print(a)
print(b)

# good practice: say the data type
x = torch.tensor([1, 2, 3], dtype=torch.float32)
print(x.dtype)
x = torch.ones(5, requires_grad=True)
print(x)
